//go:build linux

package pgasync

import (
	"context"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
	"golang.org/x/sys/unix"
)

// SetLowWaterDelay sets how long p's readers wait under a raised low-water
// mark before lowering it. Call it before p's first use.
func SetLowWaterDelay(p *Pool, d time.Duration) { p.lowWaterDelay = d }

// LowWaterMarks returns the receive low-water mark the kernel has for each
// shared connection of p's loop i; -1 for a connection without a
// low-water descriptor.
func LowWaterMarks(ctx context.Context, p *Pool, i int) ([]int, error) {
	ls := p.loops[i]
	return fdpoll.Await(ctx, fdpoll.Call(ls.loop, ctx, func(context.Context) ([]int, error) {
		var marks []int
		for _, c := range ls.shared {
			if c.sock < 0 {
				marks = append(marks, -1)
				continue
			}
			n, err := unix.GetsockoptInt(c.sock, unix.SOL_SOCKET, unix.SO_RCVLOWAT)
			if err != nil {
				return nil, err
			}
			marks = append(marks, n)
		}
		return marks, nil
	}))
}
