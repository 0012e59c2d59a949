//go:build amd64 || arm64

package fdpoll

// getg returns an identity for the calling goroutine: the address of its
// runtime descriptor. It is only ever compared for equality with the identity
// of a live goroutine (a loop or a task coroutine), so reuse of a descriptor by
// a later goroutine after one exits cannot cause a false match.
func getg() uintptr
