// Command examples is yieldio's demo: it runs each capability of the library
// in turn and prints what happened.
//
//	go run ./examples/...
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	g, err := fdpoll.NewGroup(0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer g.Close()
	if err := waitFDDemo(ctx, g, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "waitfd demo:", err)
		os.Exit(1)
	}
}
