package api

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof" // its init also registers on http.DefaultServeMux, which Passport never serves
	"net/netip"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/winkk/passport/authn"
)

type metrics struct {
	httpRequests   *prometheus.CounterVec
	requests       *prometheus.CounterVec
	logins         *prometheus.CounterVec
	answers        *prometheus.CounterVec
	streamsRefused *prometheus.CounterVec
	told           *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, svc *authn.Service, open *streams) *metrics {
	m := &metrics{
		httpRequests:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_http_requests_total", Help: "HTTP requests by route and status class."}, []string{"route", "code"}),
		requests:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_authn_requests_total", Help: "Accepted SAML AuthnRequests by application."}, []string{"app"}),
		logins:         prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_logins_total", Help: "Logins answered by outcome."}, []string{"outcome"}),
		answers:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_challenge_answers_total", Help: "Phone answers to challenges by resulting state and reason."}, []string{"state", "reason"}),
		streamsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_streams_refused_total", Help: "Login event streams and device long-polls refused (429) by the bound that was full: login, client, device or process."}, []string{"limit"}),
		told: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "passport_login_told_seconds",
			Help:    "From a phone's answer recorded (by any replica) to the page waiting on this server told it, by answer: approved or denied. Across replicas it includes the difference of their clocks.",
			Buckets: []float64{.001, .002, .005, .01, .015, .02, .03, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"answer"}),
	}
	reg.MustRegister(m.httpRequests, m.requests, m.logins, m.answers, m.streamsRefused, m.told,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "passport_streams_open", Help: "Login event streams and device long-polls open in this process."},
			func() float64 { return float64(open.count()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "passport_store_round_trips_total", Help: "Requests to the store awaited one after another (a command, or a pipeline sent at once)."},
			func() float64 { return float64(svc.StoreStats().RoundTrips) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "passport_store_commands_total", Help: "Commands sent to the store (a script is one)."},
			func() float64 { return float64(svc.StoreStats().Commands) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "passport_store_replica_ack_missed_total", Help: "Writes that must survive a failover (phone answers) that no replica acknowledged in time; they stand on the master."},
			func() float64 { return float64(svc.StoreStats().ReplicaAckMissed) }))
	return m
}

func (s *Server) countRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		err := next(c)
		code := c.Response().Status
		if err != nil {
			_, code = classify(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(code/100)+"xx").Inc()
		return err
	}
}

// metricsHTTP serves the registry in Prometheus's text format.
func (s *Server) metricsHTTP() http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
}

// handleMetrics serves /metrics to loopback clients only, and to nobody when the metrics have a listener of
// their own: anyone else is told there is nothing here, as for any unknown path. The client's address is the
// one the rate limits count (see Config.TrustedProxies), so a public client behind a trusted proxy on the same
// host is not taken for a local one.
func (s *Server) handleMetrics(c echo.Context) error {
	ip, err := netip.ParseAddr(c.RealIP())
	if s.cfg.MetricsListener || err != nil || !ip.Unmap().IsLoopback() {
		return echo.ErrNotFound
	}
	s.metricsHTTP().ServeHTTP(c.Response(), c.Request())
	return nil
}

// OpsHandler is what the operations listener (PASSPORT_METRICS_LISTEN) serves: /metrics, and the Go runtime's
// profiles under /debug/pprof/ when Config.Pprof is set. It checks no credential: serve it only on an address
// the public cannot reach.
func (s *Server) OpsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.metricsHTTP())
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// opsWriteTimeout bounds the writing of an answer on the operations listener: long enough for the CPU profiles
// and traces one takes (pprof refuses one that would outlast it), short enough to drop a stalled reader.
const opsWriteTimeout = 2 * time.Minute

// ConfigureOpsHTTP makes hs serve OpsHandler within the header and read limits of Limits.
func (s *Server) ConfigureOpsHTTP(hs *http.Server) {
	l := s.cfg.Limits
	hs.Handler = s.OpsHandler()
	hs.MaxHeaderBytes = l.MaxHeaderBytes
	hs.ReadHeaderTimeout = l.ReadHeaderTimeout
	hs.ReadTimeout = l.ReadTimeout
	hs.WriteTimeout = opsWriteTimeout
	hs.IdleTimeout = l.IdleTimeout
	if hs.ErrorLog == nil {
		hs.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	}
}

func (s *Server) handleHealthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// handleReadyz answers 200 when the store answers, with details operators need (certificate expiry).
func (s *Server) handleReadyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(s.ctx(c), 2*time.Second)
	defer cancel()
	cert := s.idp.Ring().Current.Certificate
	body := map[string]any{"certificate_not_after": cert.NotAfter.UTC()}
	if w := authn.CertificateWarning(cert, s.cfg.Clock()); w != "" {
		body["warnings"] = []string{w}
	}
	if err := s.svc.Ping(ctx); err != nil {
		s.log.Warn("readiness: store does not answer", "err", err)
		body["status"] = "unavailable"
		body["store"] = "not answering"
		return c.JSON(http.StatusServiceUnavailable, body)
	}
	body["status"] = "ok"
	body["store"] = "ok"
	return c.JSON(http.StatusOK, body)
}

func (s *Server) handleOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, "application/yaml", OpenAPI)
}
