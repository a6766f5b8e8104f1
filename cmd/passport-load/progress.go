package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ui shows progress on stderr when it is a terminal, and nothing otherwise (piped, redirected, in tests).
type ui struct {
	w   io.Writer
	tty bool
	// tick, when set, hears every step of progress by the name of what progresses ("logins", "users",
	// "browsers"): tests follow the run with it.
	tick func(what string)
}

func newUI(stderr io.Writer) *ui {
	f, ok := stderr.(*os.File)
	return &ui{w: stderr, tty: ok && term.IsTerminal(int(f.Fd()))}
}

// status says what the run is doing now.
func (u *ui) status(format string, a ...any) {
	if u.tty {
		fmt.Fprintf(u.w, "passport-load: "+format+"\n", a...)
	}
}

// bar shows progress over n items of unit (a spinner with a count when n < 0) on a terminal.
type bar struct {
	pb   *progressbar.ProgressBar // nil when not on a terminal
	unit string
	tick func(string)
}

func (u *ui) bar(n int64, what, unit string) *bar {
	b := &bar{unit: unit, tick: u.tick}
	if u.tty {
		b.pb = progressbar.NewOptions64(n,
			progressbar.OptionSetWriter(u.w),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(n > 0),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionSetWidth(30),
		)
	}
	return b
}

// add counts one item; a nil bar (no progress to show) does nothing.
func (b *bar) add() {
	if b == nil {
		return
	}
	if b.pb != nil {
		_ = b.pb.Add(1)
	}
	if b.tick != nil {
		b.tick(b.unit)
	}
}

func (b *bar) done() {
	if b != nil && b.pb != nil {
		_ = b.pb.Finish()
		_ = b.pb.Clear()
	}
}
