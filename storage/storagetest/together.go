package storagetest

import "sync"

// Together runs fn(0) … fn(n-1) on n goroutines that are all started first
// and then released at the same instant, and returns their results in
// order. It is the one helper every "exactly one winner" test uses, on a
// store directly or over HTTP: a single-use artifact redeemed by n racers
// must produce one success and n-1 clean refusals.
func Together[T any](n int, fn func(i int) T) []T {
	out := make([]T, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			out[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return out
}

// Count returns how many results satisfy pred.
func Count[T any](results []T, pred func(T) bool) int {
	n := 0
	for _, r := range results {
		if pred(r) {
			n++
		}
	}
	return n
}
