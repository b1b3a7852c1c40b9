package client

import (
	"context"
	"time"
)

// SetSleep replaces the wait between retries, so that tests record the
// waits instead of spending them.
func (c *Client) SetSleep(f func(ctx context.Context, d time.Duration) error) { c.sleep = f }
