package fdpoll

import (
	"context"
	"time"
)

// Sleep pauses the caller for d, or until ctx is done, in which case it
// returns ctx's error. Inside a task the task suspends on a loop timer and
// the loop goes on with other work; elsewhere the goroutine sleeps.
func Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	deadline := time.Now().Add(d)
	p, err := newParker(hintOf(ctx))
	if err != nil {
		return err
	}
	defer p.release()
	for time.Now().Before(deadline) {
		if err := ctx.Err(); err != nil {
			return err
		}
		p.arm()
		if err := p.wait(ctx, deadline); err != nil {
			return err
		}
	}
	return nil
}

// hintOf returns the loop of ctx's task, the loop the caller most likely
// runs on.
func hintOf(ctx context.Context) *Loop {
	if t := taskOf(ctx); t != nil {
		return t.loop
	}
	return nil
}
