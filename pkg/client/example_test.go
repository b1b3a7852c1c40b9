package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitsi-signer/jitsi-signer/pkg/client"
	"github.com/jitsi-signer/jitsi-signer/pkg/jitsi"
	"github.com/jitsi-signer/jitsi-signer/pkg/server"
)

// startSigner runs a jitsi-signer API on a loopback port for the example;
// a backend would point the client at its deployed service instead.
func startSigner() *httptest.Server {
	signer, err := jitsi.NewHMACSigner("HS256", []byte("an-example-secret-of-at-least-32-bytes"), "")
	if err != nil {
		log.Fatal(err)
	}
	issuer, err := jitsi.NewIssuer(jitsi.Config{
		BaseURL: "https://meet.example.com", AppID: "my-app", Audience: "jitsi", Subject: "meet.example.com",
		DefaultTTL: time.Hour, MaxTTL: 24 * time.Hour, ClockSkew: 30 * time.Second,
	}, signer)
	if err != nil {
		log.Fatal(err)
	}
	return httptest.NewServer(server.NewAPI(server.Options{
		Issuer:  issuer,
		Metrics: server.NewMetrics(prometheus.NewRegistry(), server.BuildInfo{}),
		Logger:  slog.New(slog.DiscardHandler),
	}))
}

func Example() {
	srv := startSigner()
	defer srv.Close()

	c, err := client.New(srv.URL, "example-api-key", client.WithTimeout(5*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	link, err := c.CreateLink(context.Background(), client.LinkRequest{
		Room: "Booking 123",
		User: client.User{ID: "42", Name: "John Doe", Email: "john@example.com"},
		Role: client.RoleModerator,
		TTL:  2 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("room:", link.Room)
	fmt.Println("moderator:", link.Moderator, "signed:", link.Signed)

	// A refusal is a *client.Error carrying the problem's code and field.
	_, err = c.CreateLink(context.Background(), client.LinkRequest{Room: "Mario's room", User: client.User{Name: "Mario"}})
	var e *client.Error
	if errors.As(err, &e) {
		fmt.Println("refused:", e.StatusCode, e.Code, e.Field)
	}
	// Output:
	// room: booking%20123
	// moderator: true signed: true
	// refused: 422 room_not_joinable room
}
