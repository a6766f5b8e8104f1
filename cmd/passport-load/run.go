package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/winkk/passport/saml"
)

const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// maxPendingPerUser is how many of a user's sign-ins the IdP lets wait at once: the waiting browsers share users
// that many at a time.
const maxPendingPerUser = 3

// warmUp is how long the run does logins, uncounted, to learn its rate when it must size its users for a
// duration.
const warmUp = 2 * time.Second

// run is the whole program: args without the program name. It returns the exit status.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "passport-load: %s (see passport-load --help)\n", err)
		return exitUsage
	}
	rep, err := loadTest(ctx, cfg, newUI(stderr))
	if rep != nil {
		write := rep.WriteText
		if cfg.JSON {
			write = rep.WriteJSON
		}
		if werr := write(stdout); werr != nil {
			err = errors.Join(err, fmt.Errorf("write the report: %w", werr))
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "passport-load: %s\n", strings.Join(strings.Fields(err.Error()), " "))
		return exitFail
	}
	if rep.Logins.Failed > 0 || (rep.Waiting != nil && rep.Waiting.Failed > 0) {
		return exitFail
	}
	return exitOK
}

// loadRun is one run of the load generator.
type loadRun struct {
	cfg    config
	ui     *ui
	fx     *fixture
	r      *runner
	plain  *http.Client // admin API and metrics
	phones *http.Client // the phones' device API calls
	pool   *userPool
	setup  time.Duration // spent creating the application and the users
	redis  *redisProbe   // nil without --redis
}

// loadTest sets up, measures, and cleans up whatever happens. The report is nil when nothing was measured.
func loadTest(ctx context.Context, cfg config, ui *ui) (_ *Report, err error) {
	idp, _ := url.Parse(cfg.IdP) // checked by parseConfig
	src, err := newSources(ctx, idp.Hostname(), cfg.SourceAddrs)
	if err != nil {
		return nil, err
	}
	// Redis is read before anything is created: the first reading of its memory is the baseline of the setup's.
	probe, err := openRedis(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer probe.close()
	defer keepStamping()() // from now: the kernel turns receive timestamps on during the setup
	plain := &http.Client{Timeout: 30 * time.Second}
	phones := &http.Client{Transport: &http.Transport{
		DialContext:         src.rotatingDial,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 2 * cfg.Concurrency,
		IdleConnTimeout:     30 * time.Second,
	}, Timeout: cfg.Timeout}
	defer phones.CloseIdleConnections()
	fx := newFixture(&adminClient{base: cfg.IdP, token: cfg.AdminToken, http: plain}, cfg.Domain, cfg.Sign)
	l := &loadRun{cfg: cfg, ui: ui, fx: fx, plain: plain, phones: phones, pool: newUserPool(), redis: probe}

	rep := &Report{IdP: cfg.IdP, Run: fx.Run, Concurrency: cfg.Concurrency, Sign: cfg.Sign.String()}
	if cfg.Sign != saml.SignBoth {
		rep.Notes = append(rep.Notes, "the application signs the "+rep.Sign+" only (--sign): one RSA signature per login; the ratio is still to two")
	}
	rep.Sources.Count, rep.Sources.Loopback, rep.Sources.Note = src.Count(), src.Loopback(), src.Note
	var measured bool // whether there is a report to show
	defer func() {
		// Everything created goes, also on Ctrl-C (ctx is done then) and on error.
		if ctx.Err() != nil {
			ui.status("interrupted: cleaning up (Ctrl-C again to quit without cleaning up)")
		} else {
			ui.status("cleaning up")
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		start := time.Now()
		err = errors.Join(err, fx.cleanup(cctx, cfg.Concurrency))
		rep.Setup.Cleanup = time.Since(start)
	}()
	report := func(err error) (*Report, error) {
		if ctx.Err() != nil {
			err = errors.Join(err, errors.New("interrupted"))
		}
		if !measured {
			return nil, err
		}
		rep.Setup.Duration = l.setup
		l.redis.finish(ctx, rep)
		return rep, err
	}

	// Set-up: the application, the users and their phones.
	ui.status("run %s: setting up on %s", fx.Run, cfg.IdP)
	start := time.Now()
	err = fx.createApp(ctx)
	l.setup += time.Since(start)
	if err != nil {
		return report(err)
	}
	l.r = &runner{fx: fx, sources: src, timeout: cfg.Timeout}
	sizeLater := cfg.Users == 0 && cfg.Logins < 0
	n := l.usersFor()
	waitUsers, err := l.enroll(ctx, ceilDiv(cfg.Waiting, maxPendingPerUser), maxPendingPerUser)
	if err != nil {
		return report(err)
	}
	loginUsers, err := l.enroll(ctx, n, cfg.LoginsPerUser)
	if err != nil {
		return report(err)
	}
	l.pool.add(loginUsers...)
	rep.Setup.Users = len(waitUsers) + len(loginUsers)
	l.redis.setupDone(ctx, rep.Setup.Users)

	// An RSA signature timed here, in this process, before the load: the yardstick of the IdP's cost.
	ui.status("timing %d RSA-2048 signatures", signatureSamples)
	sigs, err := newSignatureTimer()
	if err != nil {
		return report(err)
	}
	sig, err := sigs.times(signatureSamples)
	if err != nil {
		return report(err)
	}
	rep.Signature = &Signature{Algorithm: "RSA-2048 PKCS#1 v1.5 SHA-256", Samples: sig.Samples, Median: cmp.Or(sig.CPU, sig.Wall), MedianWall: sig.Wall}
	measured = true

	if cfg.Waiting > 0 {
		var closeWaiting func()
		rep.Waiting, closeWaiting = l.waiting(ctx, waitUsers)
		if rep.Waiting.Waiting > 0 && ctx.Err() == nil {
			l.redis.read(ctx, whileWaiting)
		}
		if cfg.KeepWaiting {
			defer closeWaiting()
			rep.Notes = append(rep.Notes, fmt.Sprintf("%d browsers kept waiting on their event streams while the logins ran (--keep-waiting)", rep.Waiting.Waiting))
		} else {
			closeWaiting()
		}
		if ctx.Err() != nil {
			return report(nil)
		}
	}

	if sizeLater {
		more, note, err := l.calibrate(ctx)
		rep.Setup.Users += more
		rep.Notes = append(rep.Notes, note)
		if err != nil {
			return report(err)
		}
	}
	if cfg.Logins == 0 {
		rep.Stopped = "no logins (--logins 0)"
		return report(nil)
	}

	// The measured logins, between two readings of the IdP's metrics (and of Redis's memory).
	l.redis.read(ctx, beforeLogins)
	before, merr := scrapeMetrics(ctx, l.plain, cfg.Metrics)
	res := newResults()
	if cfg.CheckAfter {
		if res.later, err = newLaterChecks(); err != nil {
			return report(err)
		}
		defer func() { err = errors.Join(err, res.later.close()) }()
	}
	var b *bar
	if cfg.Logins > 0 {
		b = ui.bar(int64(cfg.Logins), "logins", "logins")
	} else {
		b = ui.bar(-1, fmt.Sprintf("logins for %s", cfg.Duration), "logins")
	}
	cpu0, hasCPU := processCPU()
	steal := startSteal()
	stopTiming := sigs.during(signatureEvery)
	l.r.connsPerLogin() // from here on
	rep.Stopped = l.attack(ctx, cfg.Duration, cfg.Logins, res, b)
	rep.BrowserConns = l.r.connsPerLogin()
	during, terr := stopTiming()
	cpu1, _ := processCPU()
	b.done()
	if terr != nil {
		return report(terr)
	}
	rep.Signature.During = &SignatureDuring{Samples: during.Samples, Median: cmp.Or(during.CPU, during.Wall), MedianWall: during.Wall}
	rep.CPU = machineModel()
	if p, ok := steal.percent(); ok {
		rep.Steal = &p
		if p >= stealNoted {
			rep.Notes = append(rep.Notes, fmt.Sprintf("the hypervisor gave %.0f%% of this machine's CPU time to other guests while the logins ran: CPU times and latencies are inflated by it; compare this run only with runs like it", p))
		}
	}
	l.redis.read(ctx, afterLogins)
	var after idpMetrics
	if merr == nil {
		after, merr = scrapeMetrics(context.WithoutCancel(ctx), l.plain, cfg.Metrics)
	}
	if res.later != nil {
		// The IdP's cost is read: now the Responses, whatever happens to ctx (the logins are done).
		rep.Check = &Check{After: true}
		ui.status("checking %d Responses as the SP would", res.waitingCheck())
		t0 := time.Now()
		c0, hasCPU := processCPU()
		n, cerr := res.checkKept(l.r.verify)
		rep.Check.Responses, rep.Check.Duration = n, time.Since(t0)
		if c1, _ := processCPU(); hasCPU && n > 0 {
			rep.Check.CPUPerResponse = (c1 - c0) / time.Duration(n)
		}
		if cerr != nil {
			rep.Notes = append(rep.Notes, "the check after the logins stopped: "+cerr.Error())
		}
		rep.Notes = append(rep.Notes, "the Responses were checked after the logins (--check-after): this generator's CPU per login leaves those checks out")
	}
	res.fill(rep)
	if merr != nil {
		rep.Notes = append(rep.Notes, "the IdP's cost is unknown: "+merr.Error())
	} else {
		rep.Cost = cost(before, after, rep.Logins.Succeeded)
		if rep.Told = told(before, after); rep.Told == nil {
			rep.Notes = append(rep.Notes, "the IdP's /metrics has no "+metricTold+": only this generator's approve → told is known")
		}
		if hasCPU && rep.Logins.Succeeded > 0 {
			g := (cpu1 - cpu0).Seconds() / float64(rep.Logins.Succeeded)
			rep.Cost.GeneratorCPUPerLogin = &g
		}
		if c := rep.Cost.CPUPerLogin; c != nil {
			rep.Signature.Ratio = overTwo(*c, rep.Signature.Median)
			rep.Signature.During.Ratio = overTwo(*c, rep.Signature.During.Median)
		}
	}
	if n, ok := niceness(); ok {
		rep.Nice = &n
	}
	if src.Loopback() {
		rep.Notes = append(rep.Notes, sharedCPUNote(rep.Nice))
	}
	return report(nil)
}

// stealNoted is the stolen share of the machine's CPU (percent) from which the report warns of it.
const stealNoted = 5

// overTwo is cpuPerLogin (seconds) over two signatures of sig each; 0 when sig is unknown.
func overTwo(cpuPerLogin float64, sig time.Duration) float64 {
	if sig <= 0 {
		return 0
	}
	return cpuPerLogin / (2 * sig.Seconds())
}

// usersFor is how many users the measured logins need at first: --users, or enough for --logins, or (for a run
// bounded only by time) a first batch to learn the rate with.
func (l *loadRun) usersFor() int {
	c := l.cfg
	switch {
	case c.Users > 0:
		return c.Users
	case c.Logins > 0:
		return min(c.Logins, ceilDiv(c.Logins, c.LoginsPerUser)+c.Concurrency)
	case c.Logins == 0:
		return 0
	}
	return 4 * c.Concurrency
}

// enroll creates n users, each with an invitation and an enrolled phone, each allowed logins logins.
func (l *loadRun) enroll(ctx context.Context, n, logins int) ([]*user, error) {
	if n == 0 {
		return nil, nil
	}
	b := l.ui.bar(int64(n), "enrolling users", "users")
	defer b.done()
	start := time.Now()
	defer func() { l.setup += time.Since(start) }()
	users := make([]*user, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.cfg.Concurrency)
	for i := range users {
		g.Go(func() error {
			email, token, err := l.fx.newUser(gctx)
			if err != nil {
				return err
			}
			ph, err := enrollPhone(gctx, l.fx.Base, l.phones, token)
			if err != nil {
				return fmt.Errorf("%s: %w", email, err)
			}
			users[i] = &user{email: email, phone: ph, left: logins}
			b.add()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("set up users: %w", err)
	}
	return users, nil
}

// attack runs logins on cfg.Concurrency workers for d from its own start (zero: no bound) or until maxLogins
// (<= 0: none), or until no user has logins left or ctx ends; logins under way then finish. It returns why it
// stopped. The clock starts here, after the signature timed as the logins start, so that the logins get all of d.
func (l *loadRun) attack(ctx context.Context, d time.Duration, maxLogins int, res *results, b *bar) string {
	startCtx, cancel := ctx, context.CancelFunc(func() {})
	if d > 0 {
		startCtx, cancel = context.WithTimeout(ctx, d)
	}
	defer cancel()
	var started atomic.Int64
	var exhausted atomic.Bool
	var wg sync.WaitGroup
	for range l.cfg.Concurrency {
		wg.Go(func() {
			for startCtx.Err() == nil {
				if maxLogins > 0 && started.Add(1) > int64(maxLogins) {
					return
				}
				u := l.pool.take(startCtx)
				if u == nil {
					if startCtx.Err() == nil {
						exhausted.Store(true)
					}
					return
				}
				start := time.Now()
				t, resp, f := l.r.login(ctx, u, l.r.sources.pick())
				end := time.Now()
				l.pool.give(u)
				l.record(res, keptLogin{Start: start, End: end, T: t, R: resp}, f)
				b.add()
			}
		})
	}
	wg.Wait()
	switch {
	case ctx.Err() != nil:
		return "interrupted"
	case exhausted.Load():
		return "every user's logins were used (each may start --logins-per-user); pass --users for more"
	case maxLogins > 0 && res.done() >= maxLogins:
		return fmt.Sprintf("%d logins done", maxLogins)
	}
	return "--duration reached"
}

// record counts a finished login k that failed with f, or else checks its Response now, or keeps it for the check
// after the logins (--check-after).
func (l *loadRun) record(res *results, k keptLogin, f *failure) {
	switch {
	case f == nil && res.later != nil:
		err := res.keep(k)
		if err == nil {
			return
		}
		f = &failure{stepVerify, "not kept", err.Error()}
	case f == nil:
		f = l.r.verify(k.R)
	}
	res.add(k.Start, k.End, k.T, f)
}

// calibrate does uncounted logins for warmUp to learn the rate, then enrolls users enough for the whole
// --duration at three times that rate, and the warm-up's logins once more. It returns how many users it added
// and a note for the report.
func (l *loadRun) calibrate(ctx context.Context) (int, string, error) {
	l.ui.status("warming up for %s to size the users for %s", warmUp, l.cfg.Duration)
	res := newResults()
	start := time.Now()
	l.attack(ctx, warmUp, 0, res, nil)
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return 0, "", nil
	}
	var rep Report
	res.fill(&rep)
	// Sized by the logins that succeeded (failing ones are no measure of what the run can do), with room for a
	// run faster than its warm-up (a warm-up that shared the machine with a busy moment ran at under half the
	// rate of the run after it): users are cheap, and a run that uses them all up stops early.
	rate := float64(rep.Logins.Succeeded) / elapsed.Seconds()
	need := int(math.Ceil(rate*l.cfg.Duration.Seconds()*3)) + max(4*l.cfg.Concurrency, rep.Logins.Attempted)
	more := max(0, ceilDiv(need-l.pool.logins(), l.cfg.LoginsPerUser))
	users, err := l.enroll(ctx, more, l.cfg.LoginsPerUser)
	l.pool.add(users...)
	note := fmt.Sprintf("warm-up: %d logins in %s, %d succeeded (%.1f/s), not counted; %d more users enrolled for the run",
		rep.Logins.Attempted, elapsed.Round(time.Millisecond), rep.Logins.Succeeded, rate, len(users))
	return len(users), note, err
}

// waiting opens cfg.Waiting browsers that each park a login, identify and wait on the page's event stream, with
// nobody approving; it reads the IdP's memory before the first and once all wait. closeAll closes them; their
// logins expire on their own.
func (l *loadRun) waiting(ctx context.Context, users []*user) (w *Waiting, closeAll func()) {
	n := l.cfg.Waiting
	w = &Waiting{Browsers: n}
	l.ui.status("opening %d waiting browsers", n)
	before, merr := scrapeMetrics(ctx, l.plain, l.cfg.Metrics)
	b := l.ui.bar(int64(n), "waiting browsers", "browsers")
	res := newResults()
	var mu sync.Mutex
	var open []*parked
	var cancels []context.CancelFunc
	closeAll = func() {
		for i, p := range open {
			p.close()
			cancels[i]()
		}
	}
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(l.cfg.Concurrency, n) {
		wg.Go(func() {
			for i := range work {
				// The stream must outlive this call: its context ends when the browser is closed, or at the timeout
				// if it is not waiting by then.
				pctx, cancel := context.WithCancel(ctx)
				timer := time.AfterFunc(l.cfg.Timeout, cancel)
				p, f := l.r.park(pctx, users[i/maxPendingPerUser].email, l.r.sources.pick())
				if !timer.Stop() && f != nil && f.Kind == kindInterrupted && ctx.Err() == nil {
					f.Kind = "timeout"
				}
				if f != nil {
					cancel()
					res.add(start, time.Now(), nil, f)
					continue
				}
				mu.Lock()
				open, cancels = append(open, p), append(cancels, cancel)
				mu.Unlock()
				b.add()
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	b.done()
	w.Duration = time.Since(start)
	w.Waiting = len(open)
	w.Failed = res.failed
	w.Errors = sortedErrors(res.errors)
	if merr != nil || len(open) == 0 || ctx.Err() != nil {
		return w, closeAll
	}
	after, err := scrapeMetrics(ctx, l.plain, l.cfg.Metrics)
	if err != nil {
		return w, closeAll
	}
	per := func(name string) float64 {
		d, ok := delta(before, after, name)
		if !ok {
			return 0
		}
		return d / float64(len(open))
	}
	w.RSSBefore, w.RSSAfter = before.values[metricRSS], after.values[metricRSS]
	w.RSSPerBrowser = per(metricRSS)
	w.HeapPerBrowser = per(metricHeap)
	w.GoroutinesPerBrow = per(metricGoroutines)
	return w, closeAll
}

// told summarizes what the IdP's approve → told histogram grew by; nil when it lacks the histogram.
func told(before, after idpMetrics) *IdPTold {
	d := histogramDelta(before, after, metricTold)
	if d == nil {
		return nil
	}
	t := &IdPTold{Count: int64(d[len(d)-1].Count)}
	for _, q := range []struct {
		name string
		q    float64
		v    *time.Duration
	}{{"50th", 0.50, &t.P50}, {"90th", 0.90, &t.P90}, {"99th", 0.99, &t.P99}} {
		v, beyond := quantile(d, q.q)
		*q.v = time.Duration(v * float64(time.Second))
		if beyond {
			t.Beyond = append(t.Beyond, q.name)
		}
	}
	return t
}

// cost divides what the IdP's counters grew by over the logins that succeeded.
func cost(before, after idpMetrics, logins int) *Cost {
	c := &Cost{}
	per := func(name string) *float64 {
		d, ok := delta(before, after, name)
		if !ok {
			c.Missing = append(c.Missing, name)
			return nil
		}
		if logins == 0 {
			return nil
		}
		v := d / float64(logins)
		return &v
	}
	if d, ok := delta(before, after, metricCPU); ok {
		c.CPUSeconds = &d
	}
	c.CPUPerLogin = per(metricCPU)
	c.StoreCommandsPerLogin = per(metricCommands)
	c.StoreTripsPerLogin = per(metricRoundTrips)
	return c
}

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// sharedCPUNote says what sharing the machine with an IdP on loopback does to the figures, given this
// generator's nice value (nil where unknown).
func sharedCPUNote(nice *int) string {
	const shared = "the IdP and this generator share the machine's CPUs: the IdP's CPU per login is its own"
	if nice != nil && *nice > 0 {
		return fmt.Sprintf("%s; this generator runs at nice %d, so the kernel gives the IdP a CPU first, as with a generator on another machine, and the IdP's latencies include little waiting for the generator", shared, *nice)
	}
	return shared + ", its latencies include waiting for the generator (run it with nice -n 19 to give the IdP the CPU first)"
}
