// Package fdpoll is the core of yieldio: event loops, futures and coroutine
// tasks, and the non-blocking connections built on them.
//
// A Group runs N loops, each on its own goroutine with its own poller (epoll
// on Linux, kqueue on the BSDs and macOS). A task is a function running as a
// coroutine (iter.Pull) on one loop. Whatever a task waits for — a Future, a
// socket's readiness, a timer — it yields to its loop, which runs other tasks
// meanwhile and resumes it when the wait is over. Tasks of one loop never run
// in parallel, so per-loop state needs no locks.
//
// The same code also runs outside any loop: Await, Sleep, WaitFD and a
// Conn's Read and Write block a plain goroutine instead of suspending a task.
// That is what lets one http.Handler run unchanged on yieldio's server and on
// net/http.
//
// fdpoll is the only yieldio package that talks to the poller. The clients
// (pgasync, dnsasync, httpclient) and the server see futures, tasks and Conn.
package fdpoll
