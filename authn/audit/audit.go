// Package audit is Passport's audit log: who did what, when, from where. Every security-relevant step —
// each step of a login, sessions ended, devices enrolled and removed, invitations, every change an
// administrator makes, refused admin credentials — is recorded as one Event in a stream in the store, kept
// for a retention period and trimmed as new events arrive. Administrators read it newest first with filters,
// or export it for a SIEM; reported and paused sign-ins are also sent as alerts (mail, webhook).
//
// Most events come by themselves: the log is wired to authn's one hook on state changes (OnChange) and
// turns each change of a record into the event it means. Faces record the few events that are not a
// record's change (a refused admin credential) with Record, and say who acts through the request's context
// (WithActor, WithClient).
//
// Recording never fails or slows the caller: events are queued and written in batches by one background
// writer (one round trip carries every event of the last few milliseconds), trimmed by age in the same
// round trip. A failure to record is logged and counted; the events of the last flush interval are lost if
// the process dies before it ends.
package audit

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/winkk/passport/authn"
	"github.com/winkk/passport/store"
)

// Event is one security-relevant step (see the package doc). Absent fields are omitted from its JSON. No
// event holds a secret: no token, code, cookie, key or assertion.
type Event struct {
	ID        string         `json:"id"` // the stream entry ID: time-ordered, "<unix ms>-<seq>"
	Time      time.Time      `json:"time"`
	Type      string         `json:"type"`
	Actor     string         `json:"actor,omitempty"` // admin:<email or "token">, user:<email>, device:<id> or system
	Email     string         `json:"email,omitempty"`
	AppID     string         `json:"app_id,omitempty"`
	DeviceID  string         `json:"device_id,omitempty"`
	ClientIP  string         `json:"client_ip,omitempty"`
	UserAgent string         `json:"user_agent,omitempty"`
	Outcome   string         `json:"outcome,omitempty"` // OutcomeSuccess or OutcomeFailure
	Reason    string         `json:"reason,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Event types.
const (
	LoginStarted      = "login.started"
	LoginPushed       = "login.pushed"
	LoginApproved     = "login.approved"
	LoginDenied       = "login.denied"
	LoginReported     = "login.reported"
	LoginExpired      = "login.expired"
	LoginSucceeded    = "login.succeeded"
	LoginFailed       = "login.failed"
	LoginPaused       = "login.paused"
	SessionEnded      = "session.ended"
	DeviceEnrolled    = "device.enrolled"
	DeviceRemoved     = "device.removed"
	InvitationCreated = "invitation.created"
	AppCreated        = "app.created"
	AppUpdated        = "app.updated"
	AppDeleted        = "app.deleted"
	UserCreated       = "user.created"
	UserUpdated       = "user.updated"
	UserDeleted       = "user.deleted"
	KeyStaged         = "key.staged"
	KeyActivated      = "key.activated"
	AdminDenied       = "admin.denied"
)

// Types lists every event type, for documentation and metrics.
var Types = []string{
	LoginStarted, LoginPushed, LoginApproved, LoginDenied, LoginReported, LoginExpired, LoginSucceeded,
	LoginFailed, LoginPaused, SessionEnded, DeviceEnrolled, DeviceRemoved, InvitationCreated, AppCreated,
	AppUpdated, AppDeleted, UserCreated, UserUpdated, UserDeleted, KeyStaged, KeyActivated, AdminDenied,
}

// Actor names the system itself (background work, expiry).
const ActorSystem = "system"

// Config shapes a Log. Zero fields take the defaults.
type Config struct {
	// Retention is how long events are kept (default 2160h, 90 days).
	Retention time.Duration
	// Clock is the time source (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
	// Registry, when set, receives the log's metrics: events recorded by type, failures, alerts.
	Registry prometheus.Registerer
	// FlushEvery is how long an event may wait to be written with others (default 20ms); Buffer is how many
	// may wait (default 10000: past it new events are dropped, logged and counted).
	FlushEvery time.Duration
	Buffer     int
	// Alerts says where reported and paused sign-ins are sent.
	Alerts AlertConfig
	// AppName names an application for the alerts' words (default: its ID).
	AppName func(ctx context.Context, appID string) string
}

// Log records and reads the audit log. Safe for concurrent use; Close flushes what is queued.
type Log struct {
	cfg    Config
	stream *store.Stream
	log    *slog.Logger
	queue  chan Event
	done   chan struct{}
	closed sync.Once
	alerts *alerter

	recorded *prometheus.CounterVec
	failures prometheus.Counter
}

// StreamName is the store stream (under the store's key prefix) that holds the events.
const StreamName = "audit"

// New returns the audit log kept in st, and starts its writer.
func New(st *store.Store, cfg Config) *Log {
	if cfg.Retention <= 0 {
		cfg.Retention = 2160 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = 20 * time.Millisecond
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = 10000
	}
	if cfg.AppName == nil {
		cfg.AppName = func(_ context.Context, id string) string { return id }
	}
	l := &Log{
		cfg:    cfg,
		stream: st.Stream(StreamName),
		log:    cfg.Logger,
		queue:  make(chan Event, cfg.Buffer),
		done:   make(chan struct{}),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "passport_audit_events_total",
			Help: "Audit events recorded, by type."}, []string{"type"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "passport_audit_record_failures_total",
			Help: "Audit events that could not be recorded (dropped: the queue was full, or the store refused them)."}),
	}
	l.alerts = newAlerter(cfg.Alerts, cfg.Logger, cfg.Clock, cfg.AppName, st)
	for _, t := range Types {
		l.recorded.WithLabelValues(t) // every type shows, at 0, before its first event
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(l.recorded, l.failures)
		l.alerts.register(cfg.Registry)
	}
	go l.write()
	return l
}

// Close writes what is queued, stops the writer and waits (a bounded time) for alerts in flight.
func (l *Log) Close() {
	l.closed.Do(func() {
		close(l.queue)
		<-l.done
		l.alerts.close()
	})
}

// Record appends e to the log, filling in its time and, from ctx (see WithActor, WithClient), the actor,
// client address and user agent it does not name. It never blocks and never fails: an event that cannot be
// queued is logged and counted.
func (l *Log) Record(ctx context.Context, e Event) {
	if e.Time.IsZero() {
		e.Time = l.cfg.Clock().UTC()
	}
	r := requestOf(ctx)
	if e.Actor == "" {
		e.Actor = r.actor
	}
	if e.Actor == "" {
		e.Actor = ActorSystem
	}
	if e.ClientIP == "" && e.UserAgent == "" {
		e.ClientIP, e.UserAgent = r.ip, r.userAgent
	}
	defer func() {
		if recover() != nil { // the log is closed: the process is stopping
			l.failed("the audit log is closed", e)
		}
	}()
	select {
	case l.queue <- e:
	default:
		l.failed("the audit queue is full", e)
	}
}

func (l *Log) failed(why string, e Event) {
	l.failures.Inc()
	l.log.Error("audit event not recorded", "why", why, "type", e.Type, "email", e.Email, "app", e.AppID)
}

// maxBatch bounds the events written in one round trip.
const maxBatch = 256

// write is the writer: it takes the queued events and writes them in batches, every FlushEvery or every
// maxBatch events, until the queue is closed and drained.
func (l *Log) write() {
	defer close(l.done)
	batch := make([]Event, 0, maxBatch)
	tick := time.NewTicker(l.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-l.queue:
			if !ok {
				l.flush(batch)
				return
			}
			batch = append(batch, e)
			if len(batch) < maxBatch {
				continue
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
		}
		l.flush(batch)
		batch = batch[:0]
	}
}

// flush writes batch in one round trip (trimming events past the retention), then sends its alerts.
func (l *Log) flush(batch []Event) {
	if len(batch) == 0 {
		return
	}
	data := make([][]byte, len(batch))
	for i, e := range batch {
		e.ID = ""
		data[i], _ = encode(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ids, err := l.stream.Append(ctx, l.cfg.Clock().Add(-l.cfg.Retention), data...)
	if err != nil {
		for _, e := range batch {
			l.failed(err.Error(), e)
		}
		return
	}
	for i, e := range batch {
		e.ID = ids[i]
		l.recorded.WithLabelValues(e.Type).Inc()
		if e.Type == LoginReported || e.Type == LoginPaused {
			l.alerts.send(e)
		}
	}
}

// Filter selects events; zero fields select all. Type may end in ".*" (a family: "login.*").
type Filter struct {
	Type, Email, AppID string
	Since, Until       time.Time
	Limit              int    // default 50, at most MaxLimit
	Cursor             string // from the previous page
}

// Page sizes, and how many events one List reads at most while looking for matches.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	maxScan      = 20000
	scanChunk    = 500
)

// ErrBadCursor refuses a cursor that is not one List gave.
var ErrBadCursor = &authn.Error{Code: authn.ErrInvalid.Code, Message: "cursor is not one a previous page gave"}

// matches reports whether e passes f's type, email and app filters.
func (f Filter) matches(e Event) bool {
	switch {
	case f.Email != "" && !strings.EqualFold(e.Email, f.Email):
		return false
	case f.AppID != "" && e.AppID != f.AppID:
		return false
	case f.Type == "":
		return true
	case strings.HasSuffix(f.Type, ".*"):
		return strings.HasPrefix(e.Type, strings.TrimSuffix(f.Type, "*"))
	default:
		return e.Type == f.Type
	}
}

// List returns the events f selects, newest first, and the cursor of the next page ("" when there is
// none). Pages are stable while events keep arriving: a cursor names the last event a page looked at, and
// the next page starts just before it, so nothing is shown twice or skipped. A page may hold fewer than
// Limit events (even none) with a cursor: List reads at most a bounded number of events per call, and a
// filter may match few of them.
func (l *Log) List(ctx context.Context, f Filter) ([]Event, string, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultLimit
	}
	f.Limit = min(f.Limit, MaxLimit)
	end := store.MaxID
	if !f.Until.IsZero() {
		end = store.IDBefore(f.Until)
	}
	if f.Cursor != "" {
		if !store.ValidID(f.Cursor) {
			return nil, "", ErrBadCursor
		}
		end = "(" + f.Cursor
	}
	start := store.MinID
	if !f.Since.IsZero() {
		start = store.IDAt(f.Since)
	}
	var out []Event
	for scanned := 0; scanned < maxScan; {
		entries, err := l.stream.Range(ctx, start, end, scanChunk, true)
		if err != nil {
			return nil, "", err
		}
		for i, en := range entries {
			e, ok := decode(en)
			if ok && f.matches(e) {
				out = append(out, e)
				if len(out) == f.Limit {
					if i < len(entries)-1 {
						return out, en.ID, nil
					}
					return out, l.nextCursor(ctx, start, en.ID), nil
				}
			}
		}
		if len(entries) < scanChunk {
			return out, "", nil
		}
		scanned += len(entries)
		end = "(" + entries[len(entries)-1].ID
	}
	return out, strings.TrimPrefix(end, "("), nil
}

// nextCursor is id when older events remain in the range, else "" (nothing more to page to).
func (l *Log) nextCursor(ctx context.Context, start, id string) string {
	more, err := l.stream.Range(ctx, start, "("+id, 1, true)
	if err != nil || len(more) > 0 {
		return id
	}
	return ""
}

// Export calls fn with every event since the given time (zero: all), oldest first, until fn fails.
func (l *Log) Export(ctx context.Context, since time.Time, fn func(Event) error) error {
	start := store.MinID
	if !since.IsZero() {
		start = store.IDAt(since)
	}
	for {
		entries, err := l.stream.Range(ctx, start, store.MaxID, scanChunk, false)
		if err != nil {
			return err
		}
		for _, en := range entries {
			if e, ok := decode(en); ok {
				if err := fn(e); err != nil {
					return err
				}
			}
		}
		if len(entries) < scanChunk {
			return nil
		}
		start = "(" + entries[len(entries)-1].ID
	}
}

// Count counts the events of types since a time, by type (every type asked for is in the map).
func (l *Log) Count(ctx context.Context, since time.Time, types ...string) (map[string]int, error) {
	counts := make(map[string]int, len(types))
	for _, t := range types {
		counts[t] = 0
	}
	err := l.Export(ctx, since, func(e Event) error {
		if _, ok := counts[e.Type]; ok {
			counts[e.Type]++
		}
		return nil
	})
	return counts, err
}

// encode is an event's JSON as its stream entry keeps it: the text encoding/json writes, without HTML
// escaping (the entries are never pasted into a page; the console escapes what it shows, the export encodes
// again), written by go-json as the store writes its records (store.RecordJSON). go-json writes an event 2.3
// times faster than encoding/json (BenchmarkEncodeEvent), which took 2.3% of the IdP's CPU while a load run
// enrolled its users and 0.6% during logins. TestEncodeAsEncodingJSON holds the two to the same text.
func encode(e Event) ([]byte, error) {
	return store.RecordJSON(e)
}

// decode reads an event from its stream entry (an entry that is not one is skipped).
func decode(en store.StreamEntry) (Event, bool) {
	var e Event
	if err := json.Unmarshal(en.Data, &e); err != nil {
		return e, false
	}
	e.ID = en.ID
	return e, true
}

// request is who acts in a request, as the face that took it says.
type request struct{ actor, ip, userAgent string }

type requestKey struct{}

func requestOf(ctx context.Context) request {
	r, _ := ctx.Value(requestKey{}).(request)
	return r
}

// WithActor says who acts in ctx: admin:<email or "token">, user:<email>, device:<id> (see Event.Actor).
func WithActor(ctx context.Context, actor string) context.Context {
	r := requestOf(ctx)
	r.actor = actor
	return context.WithValue(ctx, requestKey{}, r)
}

// WithClient says from where a request in ctx comes: the client's address and user agent.
func WithClient(ctx context.Context, ip, userAgent string) context.Context {
	r := requestOf(ctx)
	r.ip, r.userAgent = ip, userAgent
	return context.WithValue(ctx, requestKey{}, r)
}

// ActorOf returns who acts in ctx ("" when no face said).
func ActorOf(ctx context.Context) string { return requestOf(ctx).actor }
