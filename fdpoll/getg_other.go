//go:build !amd64 && !arm64

package fdpoll

import (
	"runtime"
)

// getg returns an identity for the calling goroutine. On architectures
// without the assembly fast path it parses the goroutine ID out of the
// runtime's stack header ("goroutine 123 [running]:"), which costs about a
// microsecond; identities are only compared for equality.
func getg() uintptr {
	var buf [64]byte
	n := runtime.Stack(buf[:], false)
	b := buf[:n]
	const prefix = "goroutine "
	if len(b) < len(prefix) {
		return 0
	}
	b = b[len(prefix):]
	var id uintptr
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uintptr(c-'0')
	}
	return id
}
