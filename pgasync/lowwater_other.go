//go:build !linux

package pgasync

import (
	"context"

	"github.com/yieldio/yieldio/fdpoll"
)

// dialLowWater dials with fdpoll's Dial: the receive low-water mark is used
// on Linux only, where lowering it wakes the reader at once (see
// conn.setLowWater); elsewhere the reader pauses between reads instead.
func dialLowWater(ctx context.Context, l *fdpoll.Loop, addr string) (*fdpoll.Conn, int, error) {
	nc, err := fdpoll.Await(ctx, l.Dial(ctx, "tcp", addr))
	return nc, -1, err
}

func setRcvLowat(sock, n int) error { return nil }

// lowWaterWorks reports whether the receive low-water mark is used.
func lowWaterWorks() bool { return false }

func closeSock(sock int) {}
