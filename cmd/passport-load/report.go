package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// results collects the outcomes of logins as they finish. Safe for concurrent use.
type results struct {
	mu          sync.Mutex
	hist        map[string]*hdrhistogram.Histogram // by step key, in microseconds
	succeeded   int
	failed      int
	interrupted int
	errors      map[[2]string]*ErrorCount
	first, last time.Time
	// later keeps the Responses of logins that await their check (--check-after); nil: each is checked as it
	// arrives. kept is how many it holds.
	later *laterChecks
	kept  int
}

// Histogram range: 1 µs to 10 minutes, 3 significant digits.
const (
	histLowest  = 1
	histHighest = int64(10 * time.Minute / time.Microsecond)
)

func newResults() *results {
	r := &results{hist: map[string]*hdrhistogram.Histogram{}, errors: map[[2]string]*ErrorCount{}}
	for _, s := range steps {
		r.hist[s.Key] = hdrhistogram.New(histLowest, histHighest, 3)
	}
	return r
}

// add records one login that started at start and ended at end: its timings when it succeeded, else why it
// failed.
func (r *results) add(start, end time.Time, t timings, f *failure) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.span(start, end)
	r.outcome(t, f)
}

// span widens the time the logins took to include one from start to end.
func (r *results) span(start, end time.Time) {
	if r.first.IsZero() || start.Before(r.first) {
		r.first = start
	}
	if end.After(r.last) {
		r.last = end
	}
}

// outcome counts one login by how it ended: its timings when it succeeded, else why it failed.
func (r *results) outcome(t timings, f *failure) {
	switch {
	case f != nil && f.Kind == kindInterrupted:
		r.interrupted++
	case f != nil:
		r.failed++
		k := [2]string{f.Step, f.Kind}
		e := r.errors[k]
		if e == nil {
			e = &ErrorCount{Step: f.Step, Kind: f.Kind, Example: f.Detail}
			r.errors[k] = e
		}
		e.Count++
	default:
		r.succeeded++
		for key, d := range t {
			_ = r.hist[key].RecordValue(max(histLowest, min(histHighest, d.Microseconds())))
		}
	}
}

// done is how many logins have finished, however they ended.
func (r *results) done() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.succeeded + r.failed + r.interrupted + r.kept
}

// Report is what a run measured; the text report and the JSON one show the same data. Durations are in
// nanoseconds in JSON, as vegeta writes them.
type Report struct {
	IdP         string `json:"idp"`
	Run         string `json:"run"`
	Concurrency int    `json:"concurrency"`
	// Sign is what the application's Responses sign (--sign): both, assertion or response.
	Sign string `json:"sign"`
	// Stopped says why the run stopped starting logins.
	Stopped string `json:"stopped"`

	Logins struct {
		Attempted   int `json:"attempted"`
		Succeeded   int `json:"succeeded"`
		Failed      int `json:"failed"`
		Interrupted int `json:"interrupted"`
	} `json:"logins"`
	// Duration runs from the first login's start to the last one's end.
	Duration time.Duration `json:"duration"`
	// Rate is logins started per second; Throughput, logins succeeded per second.
	Rate       float64 `json:"rate"`
	Throughput float64 `json:"throughput"`
	// Latencies of the successful logins, by step: sso, email, approve, response, login, and arrived where
	// this system stamps what its connections receive (Linux).
	Latencies map[string]Latency `json:"latencies"`
	Errors    []ErrorCount       `json:"errors"`

	// Told is the IdP's own measure of approve → browser told over the logins.
	Told      *IdPTold   `json:"idp_told,omitempty"`
	Cost      *Cost      `json:"idp_cost,omitempty"`
	Signature *Signature `json:"signature,omitempty"`
	Waiting   *Waiting   `json:"waiting,omitempty"`
	// Redis is what the run measured of the IdP's Redis, with --redis.
	Redis *RedisReport `json:"redis,omitempty"`
	// Check is there when the Responses were checked after the logins (--check-after), not as each arrived.
	Check *Check `json:"check,omitempty"`

	Setup struct {
		Users    int           `json:"users"`
		Duration time.Duration `json:"duration"`
		Cleanup  time.Duration `json:"cleanup"`
	} `json:"setup"`
	Sources struct {
		Count    int    `json:"count"`
		Loopback bool   `json:"loopback"`
		Note     string `json:"note"`
	} `json:"sources"`
	// Steal is the share of this machine's CPU time, in percent, that its hypervisor gave to other guests
	// while the logins ran (/proc/stat); nil where it cannot be told. On a shared virtual machine it is why
	// one build's figures move from hour to hour: the CPU left, and its caches, are shared with strangers.
	Steal *float64 `json:"machine_steal_percent,omitempty"`
	// BrowserConns is the connections a successful login's browser opened, on average (each login's browser is
	// new, as each employee's is): 1 when the login page's event stream hands its connection on to the page
	// after it, 2 when the stream's end closes it.
	BrowserConns *float64 `json:"browser_connections_per_login,omitempty"`
	// CPU names the processor of the machine this generator ran on (on a loopback run, the IdP's too), from
	// /proc/cpuinfo; empty where it cannot be told. Compare runs only on the same processor: its signature
	// speed, the yardstick of the report's ratios, differs from one host to another.
	CPU string `json:"machine_cpu,omitempty"`
	// Nice is this generator's nice value, where the system tells it: above 0 (nice -n 19 passport-load),
	// the kernel gives a CPU to the IdP and Redis before the generator when they share the machine.
	Nice  *int     `json:"generator_nice,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Check is the check of the Responses after the logins (--check-after): each as the SP checks it, at the
// moment it arrived.
type Check struct {
	After bool `json:"after"`
	// Responses is how many were checked; Duration, how long that took on the clock, after the logins;
	// CPUPerResponse, this process's CPU per Response over it.
	Responses      int           `json:"responses"`
	Duration       time.Duration `json:"duration"`
	CPUPerResponse time.Duration `json:"cpu_per_response,omitempty"`
}

// Latency is a step's HDR-histogram summary.
type Latency struct {
	Count int64         `json:"count"`
	Min   time.Duration `json:"min"`
	Mean  time.Duration `json:"mean"`
	P50   time.Duration `json:"50th"`
	P90   time.Duration `json:"90th"`
	P99   time.Duration `json:"99th"`
	Max   time.Duration `json:"max"`
}

// ErrorCount is how many logins failed one way, with one example's detail.
type ErrorCount struct {
	Step    string `json:"step"`
	Kind    string `json:"kind"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// IdPTold is what the IdP's passport_login_told_seconds histogram grew by over the logins: from each phone's
// answer recorded to the waiting page told, as the IdP measured it, without the generator's own queueing.
// Quantiles are interpolated within the histogram's buckets (bounds at 1, 2, 5, 10, 15, 20, 30, 50 and 100
// ms, ...), as Prometheus's histogram_quantile does.
type IdPTold struct {
	Count int64         `json:"count"`
	P50   time.Duration `json:"50th"`
	P90   time.Duration `json:"90th"`
	P99   time.Duration `json:"99th"`
	// Beyond names the quantiles past the histogram's last finite bound, given as that bound.
	Beyond []string `json:"beyond,omitempty"`
}

// Cost is what the logins cost the IdP, from its /metrics before and after them, divided by the logins that
// succeeded. A nil field: the IdP's /metrics did not have it.
type Cost struct {
	CPUSeconds            *float64 `json:"cpu_seconds,omitempty"`
	CPUPerLogin           *float64 `json:"cpu_seconds_per_login,omitempty"`
	StoreCommandsPerLogin *float64 `json:"store_commands_per_login,omitempty"`
	StoreTripsPerLogin    *float64 `json:"store_round_trips_per_login,omitempty"`
	Missing               []string `json:"missing,omitempty"`
	// GeneratorCPUPerLogin is this process's own CPU per login over the same logins (nil where the system
	// cannot tell): what the browsers and phones cost the machine when it is the IdP's too.
	GeneratorCPUPerLogin *float64 `json:"generator_cpu_seconds_per_login,omitempty"`
}

// Signature is an RSA-2048 signature timed in this process, and the IdP's CPU per login over two of them (every
// Response carries two signatures): timed before the logins, and again while they ran.
type Signature struct {
	Algorithm string `json:"algorithm"`
	Samples   int    `json:"samples"`
	// Median is the median CPU time of one signature timed before the logins (its wall-clock time where the
	// system cannot tell CPU time); MedianWall, the median on the clock.
	Median     time.Duration `json:"median"`
	MedianWall time.Duration `json:"median_wall"`
	// Ratio is CPU per login / (2 × Median); 0 when the CPU per login is unknown.
	Ratio float64 `json:"idp_cpu_per_login_over_two_signatures,omitempty"`
	// During is the same signature timed while the logins ran (one at their start and one every
	// signatureEvery), with the ratio of the IdP's CPU per login to two of those. On a shared machine whose
	// speed moves from minute to minute it is the yardstick of the same minutes as the IdP's CPU.
	During *SignatureDuring `json:"during_logins,omitempty"`
}

// SignatureDuring is the signature timed while the logins ran.
type SignatureDuring struct {
	Samples    int           `json:"samples"`
	Median     time.Duration `json:"median"`
	MedianWall time.Duration `json:"median_wall"`
	Ratio      float64       `json:"idp_cpu_per_login_over_two_signatures,omitempty"`
}

// Waiting is the IdP's memory with browsers waiting on their event streams, unapproved.
type Waiting struct {
	Browsers int `json:"browsers"`
	Waiting  int `json:"waiting"`
	Failed   int `json:"failed"`
	// From the IdP's /metrics before the first browser and once all were waiting; 0 when missing.
	RSSBefore         float64       `json:"rss_before_bytes"`
	RSSAfter          float64       `json:"rss_after_bytes"`
	RSSPerBrowser     float64       `json:"rss_per_browser_bytes"`
	HeapPerBrowser    float64       `json:"heap_inuse_per_browser_bytes,omitempty"`
	GoroutinesPerBrow float64       `json:"goroutines_per_browser,omitempty"`
	Duration          time.Duration `json:"duration"`
	Errors            []ErrorCount  `json:"errors,omitempty"`
}

// fill puts the results into the report.
func (r *results) fill(rep *Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep.Logins.Succeeded, rep.Logins.Failed, rep.Logins.Interrupted = r.succeeded, r.failed, r.interrupted
	rep.Logins.Attempted = r.succeeded + r.failed + r.interrupted
	if !r.first.IsZero() {
		rep.Duration = r.last.Sub(r.first)
	}
	if s := rep.Duration.Seconds(); s > 0 {
		rep.Rate = float64(rep.Logins.Attempted) / s
		rep.Throughput = float64(rep.Logins.Succeeded) / s
	}
	rep.Latencies = map[string]Latency{}
	for _, s := range steps {
		if lt := summarize(r.hist[s.Key]); lt.Count > 0 || !s.Optional {
			rep.Latencies[s.Key] = lt
		}
	}
	rep.Errors = sortedErrors(r.errors)
}

func summarize(h *hdrhistogram.Histogram) Latency {
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	if h.TotalCount() == 0 {
		return Latency{}
	}
	return Latency{
		Count: h.TotalCount(),
		Min:   us(h.Min()),
		Mean:  time.Duration(h.Mean() * float64(time.Microsecond)),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		Max:   us(h.Max()),
	}
}

func sortedErrors(m map[[2]string]*ErrorCount) []ErrorCount {
	out := make([]ErrorCount, 0, len(m))
	for _, e := range m {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b ErrorCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Step, b.Step), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// WriteJSON writes the report as one JSON document.
func (rep *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// WriteText writes the report as vegeta's text report does: one line per measure, its parts named in brackets.
func (rep *Report) WriteText(w io.Writer) error {
	var sb strings.Builder
	line := func(name, parts, format string, a ...any) {
		l := fmt.Sprintf("%-14s%-48s"+format, append([]any{name, parts}, a...)...)
		sb.WriteString(strings.TrimRight(l, " ") + "\n")
	}
	sub := func(name, format string, a ...any) {
		fmt.Fprintf(&sb, "  %-60s"+format+"\n", append([]any{name}, a...)...)
	}
	l := rep.Logins
	line("Logins", "[attempted, succeeded, failed, interrupted]", "%d, %d, %d, %d", l.Attempted, l.Succeeded, l.Failed, l.Interrupted)
	line("Rate", "[attempted, succeeded]", "%.2f/s, %.2f/s", rep.Rate, rep.Throughput)
	if c := rep.BrowserConns; c != nil {
		line("Browser connections", "[per successful login]", "%.2f", *c)
	}
	line("Duration", "[logins, setup, cleanup]", "%s, %s, %s", round(rep.Duration), round(rep.Setup.Duration), round(rep.Setup.Cleanup))
	line("Run", "[id, concurrency, users, stopped]", "%s, %d, %d, %s", rep.Run, rep.Concurrency, rep.Setup.Users, rep.Stopped)
	line("Latencies", "[count, min, mean, 50, 90, 99, max]", "")
	for _, s := range steps {
		lt, ok := rep.Latencies[s.Key]
		if !ok && s.Optional {
			continue
		}
		sub(s.Label, "%d, %s, %s, %s, %s, %s, %s", lt.Count, round(lt.Min), round(lt.Mean), round(lt.P50), round(lt.P90), round(lt.P99), round(lt.Max))
	}
	if t := rep.Told; t != nil {
		line("IdP told", "[count, 50, 90, 99, from its histogram]", "%d, %s, %s, %s", t.Count, round(t.P50), round(t.P90), round(t.P99))
		if len(t.Beyond) > 0 {
			sub("past the histogram's last bound", "%s", strings.Join(t.Beyond, ", "))
		}
	}
	if c := rep.Cost; c != nil {
		line("IdP per login", "[CPU, store commands, store round trips]", "%s, %s, %s",
			orNA(c.CPUPerLogin, func(v float64) string { return round(time.Duration(v * float64(time.Second))).String() }),
			orNA(c.StoreCommandsPerLogin, func(v float64) string { return fmt.Sprintf("%.1f", v) }),
			orNA(c.StoreTripsPerLogin, func(v float64) string { return fmt.Sprintf("%.1f", v) }))
		if len(c.Missing) > 0 {
			sub("not in the IdP's /metrics", "%s", strings.Join(c.Missing, ", "))
		}
		if g := c.GeneratorCPUPerLogin; g != nil {
			sub("this generator's CPU per login", "%s", round(time.Duration(*g*float64(time.Second))))
		}
	}
	if s := rep.Signature; s != nil {
		line("Signature", fmt.Sprintf("[%s, median of %d]", s.Algorithm, s.Samples), "%s CPU, %s wall", round(s.Median), round(s.MedianWall))
		if s.Ratio > 0 {
			sub("IdP CPU per login / two signatures", "%.2f", s.Ratio)
		}
		if d := s.During; d != nil {
			sub(fmt.Sprintf("timed while the logins ran [median of %d]", d.Samples), "%s CPU, %s wall", round(d.Median), round(d.MedianWall))
			if d.Ratio > 0 {
				sub("IdP CPU per login / two of these", "%.2f", d.Ratio)
			}
		}
	}
	if wt := rep.Waiting; wt != nil {
		line("Waiting", "[browsers, waiting, failed, opened in]", "%d, %d, %d, %s", wt.Browsers, wt.Waiting, wt.Failed, round(wt.Duration))
		line("  IdP memory", "[RSS before, after, per browser]", "%s, %s, %s", bytesIEC(wt.RSSBefore), bytesIEC(wt.RSSAfter), bytesIEC(wt.RSSPerBrowser))
		line("  per browser", "[Go heap in use, goroutines]", "%s, %.1f", bytesIEC(wt.HeapPerBrowser), wt.GoroutinesPerBrow)
		for _, e := range wt.Errors {
			sub(e.Step+": "+e.Kind, "%d  (%s)", e.Count, e.Example)
		}
	}
	if r := rep.Redis; r != nil {
		r.writeText(line, sub)
	}
	if c := rep.Check; c != nil {
		line("Check", "[Responses after the logins, took, CPU each]", "%d, %s, %s", c.Responses, round(c.Duration), round(c.CPUPerResponse))
	}
	var machine, values []string
	if rep.CPU != "" {
		machine, values = append(machine, "processor"), append(values, rep.CPU)
	}
	if st := rep.Steal; st != nil {
		machine, values = append(machine, "CPU stolen by the hypervisor"), append(values, fmt.Sprintf("%.1f%%", *st))
	}
	if len(machine) > 0 {
		line("Machine", "["+strings.Join(machine, ", ")+"]", "%s", strings.Join(values, ", "))
	}
	line("Sources", "", "%s", rep.Sources.Note)
	line("Errors", "[step: kind, count, example]", "%d", l.Failed)
	for _, e := range rep.Errors {
		sub(e.Step+": "+e.Kind, "%d  (%s)", e.Count, e.Example)
	}
	for _, n := range rep.Notes {
		line("Note", "", "%s", n)
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// round keeps three significant figures or so, as people read latencies.
func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Second:
		return d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func orNA(v *float64, f func(float64) string) string {
	if v == nil {
		return "n/a"
	}
	return f(*v)
}

func bytesIEC(b float64) string {
	neg := ""
	if b < 0 {
		neg, b = "-", -b
	}
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%s%.2f GiB", neg, b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%s%.1f MiB", neg, b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%s%.1f KiB", neg, b/(1<<10))
	}
	return fmt.Sprintf("%s%.0f B", neg, b)
}
