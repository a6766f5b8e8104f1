package store

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// replyDropper is a loopback TCP proxy to a Redis server that, when armed,
// swallows the next reply the server sends and closes that connection: the
// command ran, the client sees EOF.
type replyDropper struct {
	addr  string
	armed atomic.Bool
}

func mustReplyDropper(tb testing.TB, upstream string) *replyDropper {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &replyDropper{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(cs ...net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, cs...)
	}
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", upstream)
			if err != nil {
				_ = c.Close()
				continue
			}
			track(c, u)
			wg.Go(func() { _, _ = io.Copy(u, c) })
			wg.Go(func() {
				defer c.Close()
				defer u.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := u.Read(buf)
					if n > 0 && p.armed.CompareAndSwap(true, false) {
						return
					}
					if n > 0 {
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return p
}

// TestUpdateWriteIsNotResent loses the connection right after the
// compare-and-swap script ran: go-redis would resend the script on a new
// connection, which then sees the record changed (by that very script) and
// makes Update run fn again, applying it twice. Update must instead return
// the error with fn applied once.
func TestUpdateWriteIsNotResent(t *testing.T) {
	ctx := t.Context()
	m := miniredis.RunT(t)
	p := mustReplyDropper(t, m.Addr())
	s, err := Open(ctx, Options{URL: "redis://" + p.addr + "/0", Prefix: "t:"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tbl := NewTable[int](s, "n")
	if err := tbl.Put(ctx, "x", 0, 0); err != nil {
		t.Fatal(err)
	}
	incr := func(n int) (int, error) { return n + 1, nil }
	// Load the script first, so the dropped reply is the script's own and
	// not a NOSCRIPT error.
	if got, err := tbl.Update(ctx, "x", incr); err != nil || got != 1 {
		t.Fatalf("Update = %d, %v; want 1", got, err)
	}
	for _, op := range []struct {
		name string
		do   func(fn func(int) (int, error)) (int, error)
	}{
		{"Update", func(fn func(int) (int, error)) (int, error) { return tbl.Update(ctx, "x", fn) }},
		{"UpdateAndPublish", func(fn func(int) (int, error)) (int, error) {
			return tbl.UpdateAndPublish(ctx, "x", fn, "c", "changed")
		}},
	} {
		t.Run(op.name, func(t *testing.T) {
			before, err := tbl.Get(ctx, "x")
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			_, err = op.do(func(n int) (int, error) {
				calls++
				if calls == 1 {
					p.armed.Store(true) // the GET's reply is in; drop the script's
				}
				return n + 1, nil
			})
			if err == nil || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
				t.Fatalf("%s after losing the reply = %v, want the connection error", op.name, err)
			}
			if calls != 1 {
				t.Fatalf("fn ran %d times, want 1", calls)
			}
			if got, err := tbl.Get(ctx, "x"); err != nil || got != before+1 {
				t.Fatalf("stored %d, %v; want %d (written exactly once)", got, err, before+1)
			}
		})
	}
}
