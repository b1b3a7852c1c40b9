package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// outcome is one request's result as the load generator saw it.
type outcome struct {
	start   time.Time
	latency time.Duration
	// status is 0 when the request failed in transport (refused, reset).
	status int
	kind   int
	body   []byte
	err    error
}

// requestMaker builds request number i of worker w and says which kind it
// is, for scenarios that check answers by kind.
type requestMaker func(w, i int) (body []byte, kind int)

// load drives concurrent POST /v1/links requests until ctx ends or each
// worker has sent max requests (0 for no bound), and returns every outcome.
func load(ctx context.Context, client *http.Client, url, key string, workers, max int, next requestMaker) []outcome {
	var mu sync.Mutex
	var all []outcome
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			local := make([]outcome, 0, 4096)
			for i := 0; (max == 0 || i < max) && ctx.Err() == nil; i++ {
				body, kind := next(w, i)
				local = append(local, send(client, url, key, body, kind))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return all
}

func send(client *http.Client, url, key string, body []byte, kind int) outcome {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/links", bytes.NewReader(body))
	if err != nil {
		return outcome{err: err, kind: kind}
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	o := outcome{start: time.Now(), kind: kind}
	resp, err := client.Do(req)
	if err != nil {
		o.latency, o.err = time.Since(o.start), err
		return o
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	o.latency, o.status, o.err = time.Since(o.start), resp.StatusCode, err
	if resp.StatusCode != http.StatusOK {
		o.body = data
	}
	return o
}

// newClient returns a client that keeps one connection per worker alive.
func newClient(workers int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = workers * 2
	t.MaxIdleConnsPerHost = workers * 2
	t.MaxConnsPerHost = workers * 2
	return &http.Client{Transport: t, Timeout: 30 * time.Second}
}

// stats summarises outcomes.
type stats struct {
	requests  int
	ok        int
	non2xx    int
	transport int
	p50, p99  time.Duration
	elapsed   time.Duration
}

func summarise(outs []outcome, elapsed time.Duration) stats {
	s := stats{requests: len(outs), elapsed: elapsed}
	lat := make([]time.Duration, 0, len(outs))
	for _, o := range outs {
		switch {
		case o.status == 0:
			s.transport++
		case o.status == http.StatusOK:
			s.ok++
			lat = append(lat, o.latency)
		default:
			s.non2xx++
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		s.p50 = lat[len(lat)*50/100]
		s.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return s
}

func (s stats) rps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ok) / s.elapsed.Seconds()
}

func (s stats) String() string {
	return fmt.Sprintf("%d requests in %s: %d ok (%.0f/s), %d non-2xx, %d transport errors; p50 %s, p99 %s",
		s.requests, s.elapsed.Round(time.Millisecond), s.ok, s.rps(), s.non2xx, s.transport,
		s.p50.Round(time.Microsecond), s.p99.Round(time.Microsecond))
}

// firstFailure describes the first outcome for which bad reports true.
func firstFailure(outs []outcome, bad func(outcome) bool) string {
	for _, o := range outs {
		if bad(o) {
			if o.status == 0 {
				return fmt.Sprintf("transport error: %v", o.err)
			}
			return fmt.Sprintf("status %d: %s", o.status, o.body)
		}
	}
	return ""
}
