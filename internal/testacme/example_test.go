package testacme_test

import (
	"context"
	"fmt"
	"log"

	"github.com/certfleet/certfleet/internal/testacme"
	"github.com/libdns/libdns"
)

// A world serves its zones at once: what the provider writes, the DNS server
// answers and Pebble validates against.
func ExampleNew() {
	w, err := testacme.New(testacme.Options{Zones: []string{"example.test", "example.net"}})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()

	_, err = w.Provider().AppendRecords(context.Background(), "example.test.", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", Text: "token"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Zones().Names())
	fmt.Println(w.Zones().TXT("_acme-challenge.example.test"))
	// Output:
	// [example.net. example.test.]
	// [token]
}
