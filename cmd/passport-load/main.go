// Command passport-load drives whole Passport logins against a running IdP over HTTP, as many employees would:
// each virtual browser sends an Atlassian-shaped AuthnRequest, types its email, reads the number, waits on the
// page's event stream while the virtual phone approves with its own device key (in process), and checks the
// signed Response as the SP would. It sets up its own application and users through the admin API, deletes them
// at the end, and reports logins/s, errors by kind, latency percentiles per step and the IdP's CPU per login
// beside an RSA-2048 signature timed in the same run. With --redis it also reads the IdP's Redis: its memory per
// user and per login, and its keys on each master.
//
// Exit status: 0 when every login succeeded, 1 when one failed or the run could not be set up or cleaned up
// (the report is still printed when there is one), 2 usage.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/winkk/passport/store"
)

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The Redis client's own messages (each failed dial of --redis) would print on standard error beside the one
	// line that says what failed; the errors that matter come back from the calls.
	store.SetLogger(slog.New(slog.DiscardHandler))
	go func() {
		<-ctx.Done()
		stop() // from now on a second Ctrl-C ends the program at once, without cleaning up
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// generatorGOGC is the garbage collector's target (GOGC) this program runs with when its environment sets none.
// The generator shares the machine with the IdP it measures, and its collector took 16% of its CPU at Go's
// default of 100. At 400 it spent 24-32% less CPU per login and the IdP beside it a little less too (three
// pairs of 40 s runs, docs/performance.md), for twice the resident memory (138-150 MiB with 1,000 browsers
// waiting, against 71-73 MiB).
const generatorGOGC = 400

// tuneGC sets the collector's target to generatorGOGC unless GOGC (from getenv) sets one, which the runtime
// has already read.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(generatorGOGC)
	}
}
