package main

import (
	"io"
	"sync"
)

// maxPendingLog bounds what the log writer holds before a write waits for
// the output to catch up.
const maxPendingLog = 1 << 20

// logWriter hands log lines to a goroutine that writes whatever has
// accumulated in one system call, so that under load many lines (an audit
// line per request) share a write instead of each request paying for one.
// A line is written as soon as the writer goroutine is free: nothing waits
// for a timer. Close writes what is pending.
type logWriter struct {
	out io.Writer

	mu      sync.Mutex
	pending []byte
	closed  bool
	wake    *sync.Cond
	done    chan struct{}
}

func newLogWriter(out io.Writer) *logWriter {
	w := &logWriter{out: out, done: make(chan struct{})}
	w.wake = sync.NewCond(&w.mu)
	go w.run()
	return w
}

// Write queues p, which holds whole lines (slog writes one record a call).
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	for len(w.pending) > maxPendingLog && !w.closed {
		w.wake.Wait()
	}
	w.pending = append(w.pending, p...)
	w.wake.Broadcast()
	return len(p), nil
}

func (w *logWriter) run() {
	defer close(w.done)
	var batch []byte
	for {
		w.mu.Lock()
		for len(w.pending) == 0 && !w.closed {
			w.wake.Wait()
		}
		if len(w.pending) == 0 && w.closed {
			w.mu.Unlock()
			return
		}
		batch, w.pending = w.pending, batch[:0]
		w.wake.Broadcast()
		w.mu.Unlock()
		_, _ = w.out.Write(batch)
	}
}

// Close writes every pending line and stops the writer goroutine; later
// writes go straight to the output.
func (w *logWriter) Close() error {
	w.mu.Lock()
	w.closed = true
	w.wake.Broadcast()
	w.mu.Unlock()
	<-w.done
	return nil
}
