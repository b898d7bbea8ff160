package groupcommit_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/identityd/identityd/store/groupcommit"
)

// BenchmarkGroup times Do around a run that does nothing: the primitive's own cost per item, alone (one
// caller) and with 16 × GOMAXPROCS callers of one key at once, with and without Inline.
func BenchmarkGroup(b *testing.B) {
	noop := func(_ context.Context, _ string, items []int) []error { return make([]error, len(items)) }
	for _, inline := range []bool{false, true} {
		b.Run(fmt.Sprintf("Serial/inline=%v", inline), func(b *testing.B) {
			g := groupcommit.New(noop, groupcommit.Options{Inline: inline})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := g.Do(ctx, "k", 1); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("Parallel/inline=%v", inline), func(b *testing.B) {
			g := groupcommit.New(noop, groupcommit.Options{Inline: inline})
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(16)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := g.Do(ctx, "k", 1); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
