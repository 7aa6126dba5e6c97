package storagetest

import (
	"testing"
	"time"
)

func TestDiff(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	type rec struct {
		Name  string
		At    time.Time
		Tags  []string
		Attrs map[string]string
		Next  *rec
	}
	cases := []struct {
		name      string
		want, got any
		same      bool
	}{
		{"case=equal", rec{Name: "a", At: t0}, rec{Name: "a", At: t0}, true},
		{"case=time-other-location", rec{At: t0}, rec{At: t0.In(time.FixedZone("x", 3600))}, true},
		{"case=time-differs", rec{At: t0}, rec{At: t0.Add(time.Microsecond)}, false},
		{"case=nil-vs-empty-slice", rec{Tags: nil}, rec{Tags: []string{}}, true},
		{"case=nil-vs-empty-map", rec{Attrs: nil}, rec{Attrs: map[string]string{}}, true},
		{"case=slice-differs", rec{Tags: []string{"a"}}, rec{Tags: []string{"b"}}, false},
		{"case=map-differs", rec{Attrs: map[string]string{"k": "a"}}, rec{Attrs: map[string]string{"k": "b"}}, false},
		{"case=map-key-missing", rec{Attrs: map[string]string{"k": "a"}}, rec{Attrs: map[string]string{"j": "a"}}, false},
		{"case=nested-pointer", &rec{Next: &rec{Name: "x"}}, &rec{Next: &rec{Name: "y"}}, false},
		{"case=nil-pointer", &rec{Next: nil}, &rec{Next: &rec{}}, false},
		{"case=string-differs", rec{Name: "a"}, rec{Name: "b"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := diff(tc.want, tc.got)
			if (d == "") != tc.same {
				t.Fatalf("diff = %q, want same = %v", d, tc.same)
			}
		})
	}
}
