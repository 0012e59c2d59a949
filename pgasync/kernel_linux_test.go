//go:build linux

package pgasync

import "testing"

func TestKernelAtLeast(t *testing.T) {
	for _, c := range []struct {
		release string
		want    bool
	}{
		{"6.1.0-18-amd64", true},
		{"4.18.0-513.el8.x86_64", true},
		{"4.19.0", true},
		{"4.9.0-13-amd64", false},
		{"3.10.0-1160.el7.x86_64", false},
		{"5", false},
		{"", false},
	} {
		if got := kernelAtLeast(c.release, 4, 18); got != c.want {
			t.Errorf("kernelAtLeast(%q, 4, 18) = %v, want %v", c.release, got, c.want)
		}
	}
}
