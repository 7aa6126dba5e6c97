package storagetest

import (
	"sync/atomic"
	"testing"
)

func TestTogetherRunsEveryCallAndKeepsOrder(t *testing.T) {
	var running, peak atomic.Int32
	got := Together(16, func(i int) int {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		running.Add(-1)
		return i * i
	})
	for i, v := range got {
		if v != i*i {
			t.Fatalf("result %d = %d; want %d", i, v, i*i)
		}
	}
	if c := Count(got, func(v int) bool { return v%2 == 0 }); c != 8 {
		t.Fatalf("Count(even) = %d; want 8", c)
	}
}
