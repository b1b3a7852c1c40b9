package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogWriterKeepsEveryLineWhole(t *testing.T) {
	var out lockedBuffer
	w := newLogWriter(&out)
	var wg sync.WaitGroup
	const writers, lines = 8, 2000
	for g := 0; g < writers; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < lines; i++ {
				fmt.Fprintf(w, "{\"writer\":%d,\"line\":%d}\n", g, i)
			}
		}(g)
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("wrote %d lines; want %d", len(got), writers*lines)
	}
	next := make([]int, writers)
	for _, l := range got {
		var g, i int
		if _, err := fmt.Sscanf(l, "{\"writer\":%d,\"line\":%d}", &g, &i); err != nil {
			t.Fatalf("line %q is not whole: %v", l, err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d came before line %d", g, i, next[g])
		}
		next[g]++
	}
	fmt.Fprintln(w, "after close")
	if !strings.HasSuffix(out.String(), "after close\n") {
		t.Error("a write after Close was lost")
	}
}

func TestLogWriterFlushesWithoutClose(t *testing.T) {
	var out lockedBuffer
	w := newLogWriter(&out)
	defer w.Close()
	fmt.Fprintln(w, "one line")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "one line") {
		if time.Now().After(deadline) {
			t.Fatal("a single line was never written without Close")
		}
		time.Sleep(time.Millisecond)
	}
}
