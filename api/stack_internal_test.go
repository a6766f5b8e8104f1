package api

import (
	"runtime"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestDeepStackGrows: a handler behind deepStack runs on a stack grown to fit deepStackBytes more, so the
// compiler has kept growStack's frame. Goroutines parked inside the handler hold their stacks; the runtime's
// count of stack memory in use says how big those are.
func TestDeepStackGrows(t *testing.T) {
	const n = 64
	inUse := func(mw echo.MiddlewareFunc) uint64 {
		var entered, done sync.WaitGroup
		release := make(chan struct{})
		parked := func(echo.Context) error {
			entered.Done()
			<-release
			return nil
		}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		entered.Add(n)
		done.Add(n)
		for range n {
			go func() {
				defer done.Done()
				_ = mw(parked)(nil)
			}()
		}
		entered.Wait()
		runtime.ReadMemStats(&after)
		close(release)
		done.Wait()
		if after.StackInuse < before.StackInuse {
			return 0
		}
		return after.StackInuse - before.StackInuse
	}
	plain := inUse(func(next echo.HandlerFunc) echo.HandlerFunc { return next })
	grown := inUse(deepStack)
	t.Logf("%d goroutines parked in a handler: %d KiB of stack, %d KiB behind deepStack", n, plain>>10, grown>>10)
	if grown < n*deepStackBytes {
		t.Errorf("%d goroutines behind deepStack hold %d KiB of stack, want at least %d KiB each", n, grown>>10, deepStackBytes>>10)
	}
	if plain >= n*deepStackBytes/2 {
		t.Errorf("%d goroutines hold %d KiB of stack without deepStack: the measure cannot tell it apart", n, plain>>10)
	}
}
