package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/yieldio/yieldio/fdpoll"
)

func TestWaitFDDemo(t *testing.T) {
	g, err := fdpoll.NewGroup(1)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := waitFDDemo(ctx, g, &out); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if !strings.Contains(s, "fdpoll: timeout") || !strings.Contains(s, `"hello from another goroutine"`) {
		t.Fatalf("unexpected output:\n%s", s)
	}
}
