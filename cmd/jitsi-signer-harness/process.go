package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildBinary compiles cmd/jitsi-signer into dir, with the race detector
// when race is set.
func buildBinary(ctx context.Context, dir string, race bool) (string, error) {
	return buildPackage(ctx, dir, "jitsi-signer", "github.com/jitsi-signer/jitsi-signer/cmd/jitsi-signer", race)
}

// buildReference compiles the reference server into dir.
func buildReference(ctx context.Context, dir string) (string, error) {
	return buildPackage(ctx, dir, "refserver", "github.com/jitsi-signer/jitsi-signer/cmd/jitsi-signer-harness/internal/refserver", false)
}

func buildPackage(ctx context.Context, dir, name, pkg string, race bool) (string, error) {
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build: %w", err)
	}
	return out, nil
}

// process is a running jitsi-signer (or reference server) binary.
type process struct {
	cmd   *exec.Cmd
	api   string
	admin string
	// log holds everything the process wrote to standard error.
	log  *lockedBuffer
	done chan struct{}
	err  error
}

// lockedBuffer keeps the last maxLog bytes of a process's log (an audit
// line per request adds up under load).
type lockedBuffer struct {
	mu sync.Mutex
	b  []byte
}

const maxLog = 1 << 20

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	if len(l.b) > 2*maxLog {
		l.b = append(l.b[:0], l.b[len(l.b)-maxLog:]...)
	}
	return len(p), nil
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}

// startProcess runs bin with env (added to a minimal environment) and
// waits for its "listening" log line, which names the addresses it bound.
// cpu, when not empty, pins the process with taskset.
func startProcess(bin string, env []string, cpu string, args ...string) (*process, error) {
	name := bin
	if cpu != "" {
		name, args = "taskset", append([]string{"-c", cpu, bin}, args...)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, log: &lockedBuffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	listening := make(chan [2]string, 1)
	go func() {
		br := bufio.NewReaderSize(stderr, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			p.log.Write(line)
			var l struct {
				Msg       string `json:"msg"`
				APIAddr   string `json:"api_addr"`
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal(line, &l) == nil && l.Msg == "listening" {
				listening <- [2]string{l.APIAddr, l.AdminAddr}
				break
			}
			if err != nil {
				break
			}
		}
		// From here on the log is only kept, in large reads: a reader that
		// parsed every audit line could fall behind, fill the pipe and stall
		// the server's writes, which would show in its latency.
		_, _ = io.Copy(p.log, br)
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case addrs := <-listening:
		p.api, p.admin = "http://"+addrs[0], "http://"+addrs[1]
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", filepath.Base(bin), p.err, p.log.String())
	case <-time.After(20 * time.Second):
		p.kill()
		return nil, fmt.Errorf("%s did not start listening within 20s:\n%s", filepath.Base(bin), p.log.String())
	}
}

// execCommand runs bin with env added to a minimal environment.
func execCommand(ctx context.Context, bin string, env []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	return cmd
}

func (p *process) signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// wait waits up to timeout for the process to exit and returns its exit
// code.
func (p *process) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return -1, fmt.Errorf("did not exit within %s", timeout)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), nil
	}
	if p.err != nil {
		return -1, p.err
	}
	return 0, nil
}

// pid is the server's own process id (taskset execs it in place).
func (p *process) pid() int { return p.cmd.Process.Pid }

// rss returns the process's resident memory in bytes.
func (p *process) rss() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuTime returns the CPU time (user and system) the process has used.
func (p *process) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid()))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th of them.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseInt(fields[11], 10, 64)
	st, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}
