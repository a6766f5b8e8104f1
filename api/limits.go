package api

import (
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/winkk/passport/authn"
)

// Limits bound what clients may hold of the server (CONTRACT "Abuse limits"): long-lived requests (login event
// streams, device long-polls), request headers, and the time a client may take to send a request or to read
// an answer. Zero fields take the defaults.
type Limits struct {
	// StreamsPerLogin is how many event streams one login may have open at once (default 3: a few tabs).
	StreamsPerLogin int
	// StreamsPerClient is how many event streams one client address may have open at once (default 100: an
	// office behind one NAT address has dozens of people waiting for their phone at the same moment).
	StreamsPerClient int
	// WaitsPerDevice is how many long-polls one device may have open at once (default 3).
	WaitsPerDevice int
	// MaxStreams bounds every long-lived request of the process together (default half the process's file
	// descriptor limit, RLIMIT_NOFILE), so descriptors are left for /healthz, new logins and the store.
	MaxStreams int
	// MaxHeaderBytes bounds the request line and headers (default 80 KiB: the largest Redirect-binding
	// request the SAML layer accepts, 64 KiB of SAMLRequest with its RelayState and signature, and a
	// browser's usual headers). Past it the server answers 431.
	MaxHeaderBytes int
	// ReadHeaderTimeout and ReadTimeout bound how long a client may take to send a request's headers, and
	// the whole request (defaults 10s and 30s).
	ReadHeaderTimeout, ReadTimeout time.Duration
	// WriteTimeout bounds how long an answer may take to be written, counted from the moment its request
	// was read; streams and long-polls count it from each write instead, so one that is read lives on and
	// one whose client stopped reading is cut (default 30s).
	WriteTimeout time.Duration
	// IdleTimeout is how long a kept-alive connection may wait for its next request (default 120s).
	IdleTimeout time.Duration
	// RequestTimeout is the deadline of every request's work, store included (default 10s): a store that is
	// stalled or failing over answers 503 temporarily_unavailable by then, not a hanging request. Streams and
	// long-polls have it for each look at the store instead of for their whole life.
	RequestTimeout time.Duration
}

const (
	defaultStreamsPerLogin  = 3
	defaultStreamsPerClient = 100
	defaultWaitsPerDevice   = 3
	defaultMaxHeaderBytes   = 80 << 10
)

func (l Limits) withDefaults() Limits {
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.StreamsPerLogin, defaultStreamsPerLogin)
	set(&l.StreamsPerClient, defaultStreamsPerClient)
	set(&l.WaitsPerDevice, defaultWaitsPerDevice)
	set(&l.MaxStreams, defaultMaxStreams())
	set(&l.MaxHeaderBytes, defaultMaxHeaderBytes)
	setDur(&l.ReadHeaderTimeout, 10*time.Second)
	setDur(&l.ReadTimeout, 30*time.Second)
	setDur(&l.WriteTimeout, 30*time.Second)
	setDur(&l.IdleTimeout, 120*time.Second)
	setDur(&l.RequestTimeout, 10*time.Second)
	return l
}

// defaultMaxStreams is half the process's file descriptor limit: the other half is for everything else.
func defaultMaxStreams() int {
	n := fileLimit()
	if n <= 0 {
		return 1024
	}
	return max(n/2, 16)
}

// ConfigureHTTP makes hs serve s within its Limits: header size, and the read, write and idle timeouts. Use it
// on every http.Server that serves s.
func (s *Server) ConfigureHTTP(hs *http.Server) {
	l := s.cfg.Limits
	hs.Handler = s
	hs.MaxHeaderBytes = l.MaxHeaderBytes
	hs.ReadHeaderTimeout = l.ReadHeaderTimeout
	hs.ReadTimeout = l.ReadTimeout
	hs.WriteTimeout = l.WriteTimeout
	hs.IdleTimeout = l.IdleTimeout
	if hs.ErrorLog == nil {
		hs.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	}
}

// extendWriteDeadline gives the next write of a long-lived answer (a stream, a long-poll) WriteTimeout from
// now: the server's deadline counts from the request, which such an answer outlives.
func (s *Server) extendWriteDeadline(c echo.Context) {
	_ = http.NewResponseController(c.Response()).SetWriteDeadline(time.Now().Add(s.cfg.Limits.WriteTimeout))
}

// streams counts the long-lived requests this process holds open (each holds a connection, a descriptor and
// a subscription), by key (a login, a client address, a device) and in all, and refuses one past a cap. The
// counts are this process's own: each replica holds its own connections. Safe for concurrent use.
type streams struct {
	mu    sync.Mutex
	max   int
	total int
	open  map[string]int
}

func newStreams(max int) *streams { return &streams{max: max, open: map[string]int{}} }

// streamCap is one bound a new stream counts against: at most max open under key.
type streamCap struct {
	kind    string // what is counted, for the metric: login, client, device
	key     string
	max     int
	refusal string // the message of the 429
}

// processCap is the bound of the whole process, reported when that is what is full.
var processCap = &streamCap{kind: "process", refusal: "The server is holding as many waiting connections as it can. Try again in a few seconds."}

// acquire counts a new stream against caps and the process's total, or names the first bound that is full.
// The caller calls release once the stream ends.
func (st *streams) acquire(caps ...streamCap) (release func(), full *streamCap) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.total >= st.max {
		return nil, processCap
	}
	for i, cp := range caps {
		if st.open[cp.key] >= cp.max {
			return nil, &caps[i]
		}
	}
	st.total++
	for _, cp := range caps {
		st.open[cp.key]++
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			defer st.mu.Unlock()
			st.total--
			for _, cp := range caps {
				if st.open[cp.key]--; st.open[cp.key] <= 0 {
					delete(st.open, cp.key)
				}
			}
		})
	}, nil
}

// count is the number of streams open now.
func (st *streams) count() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.total
}

// streamRetryAfter is the Retry-After of a refused stream, in seconds.
const streamRetryAfter = 10

// refuseStream answers a stream refused by the bound full: 429 rate_limited with Retry-After, and counts it.
func (s *Server) refuseStream(c echo.Context, full *streamCap) error {
	c.Response().Header().Set("Retry-After", strconv.Itoa(streamRetryAfter))
	s.metrics.streamsRefused.WithLabelValues(full.kind).Inc()
	return authn.ErrRateLimited.WithMessage(full.refusal)
}

// Streams is the number of long-lived requests (login event streams and device long-polls) open right now.
func (s *Server) Streams() int { return s.streams.count() }
