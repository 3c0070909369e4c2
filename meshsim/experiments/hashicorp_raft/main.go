// One server of a hashicorp/raft cluster, for meshsim.experiments.hashicorp_real.
//
// The Python runner starts one process per server on 127.0.0.1, each with the
// same -peers list, kills the leader with SIGKILL and reads the state changes
// this program prints on stdout as JSON lines:
//
//	{"ev":"ready","id":"s0","addr":"127.0.0.1:40001","t_ns":...}
//	{"ev":"state","id":"s1","state":"Candidate","term":3,"t_ns":...}
//	{"ev":"leader","id":"s1","leader":"127.0.0.1:40002","t_ns":...}
//	{"ev":"vote_request","id":"s1","candidate":"127.0.0.1:40003","term":4,"t_ns":...}
//
// t_ns is the wall clock (time.Now().UnixNano()) taken inside the raft
// goroutine at the moment of the change: the observer's filter function runs
// synchronously in hashicorp/raft's observe(), so the stamp is not delayed
// by this program's printing.  The term of a state change is read afterwards
// with Stats() (it is exact unless the term moved again within microseconds).
//
// Stores are the library's in-memory ones (NewInmemStore,
// NewInmemSnapshotStore): every trial is a fresh cluster, nothing is restarted.
// Library logs go to stderr.
//
// Build with Debian's packages only (golang-go, golang-github-hashicorp-raft-dev):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o hcraft main.go
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

type fsm struct{}

func (fsm) Apply(*raft.Log) interface{}         { return nil }
func (fsm) Snapshot() (raft.FSMSnapshot, error) { return snap{}, nil }
func (fsm) Restore(rc io.ReadCloser) error      { return rc.Close() }

type snap struct{}

func (snap) Persist(sink raft.SnapshotSink) error { return sink.Close() }
func (snap) Release()                             {}

type stamped struct {
	tNs int64
	obs raft.Observation
}

var outMu sync.Mutex

func emit(m map[string]interface{}) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func main() {
	id := flag.String("id", "", "this server's ID (one of -peers)")
	peers := flag.String("peers", "", "comma-separated id=host:port for every server, this one included")
	heartbeat := flag.Int("heartbeat-ms", 1000, "Config.HeartbeatTimeout in ms")
	election := flag.Int("election-ms", 1000, "Config.ElectionTimeout in ms")
	lease := flag.Int("lease-ms", 500, "Config.LeaderLeaseTimeout in ms")
	commit := flag.Int("commit-ms", 50, "Config.CommitTimeout in ms")
	logLevel := flag.String("log-level", "INFO", "library log level (stderr)")
	flag.Parse()

	var servers []raft.Server
	var addr string
	for _, p := range strings.Split(*peers, ",") {
		kv := strings.SplitN(strings.TrimSpace(p), "=", 2)
		if len(kv) != 2 {
			fmt.Fprintf(os.Stderr, "bad -peers entry %q\n", p)
			os.Exit(2)
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(kv[0]), Address: raft.ServerAddress(kv[1])})
		if kv[0] == *id {
			addr = kv[1]
		}
	}
	if addr == "" {
		fmt.Fprintf(os.Stderr, "-id %q is not in -peers\n", *id)
		os.Exit(2)
	}

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(*id)
	conf.HeartbeatTimeout = ms(*heartbeat)
	conf.ElectionTimeout = ms(*election)
	conf.LeaderLeaseTimeout = ms(*lease)
	conf.CommitTimeout = ms(*commit)
	conf.LogOutput = os.Stderr
	conf.LogLevel = *logLevel
	if err := raft.ValidateConfig(conf); err != nil {
		fmt.Fprintf(os.Stderr, "invalid config: %v\n", err)
		os.Exit(2)
	}

	trans, err := raft.NewTCPTransport(addr, nil, 3, 10*time.Second, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "transport: %v\n", err)
		os.Exit(1)
	}
	store := raft.NewInmemStore()
	r, err := raft.NewRaft(conf, fsm{}, store, store, raft.NewInmemSnapshotStore(), trans)
	if err != nil {
		fmt.Fprintf(os.Stderr, "raft: %v\n", err)
		os.Exit(1)
	}

	// Stamp every observation inside the raft goroutine; print elsewhere.
	events := make(chan stamped, 4096)
	filter := func(o *raft.Observation) bool {
		select {
		case events <- stamped{time.Now().UnixNano(), *o}:
		default:
		}
		return false
	}
	r.RegisterObserver(raft.NewObserver(nil, false, filter))

	go func() {
		for e := range events {
			m := map[string]interface{}{"id": *id, "t_ns": e.tNs}
			switch d := e.obs.Data.(type) {
			case raft.RaftState:
				m["ev"] = "state"
				m["state"] = d.String()
				if t, err := strconv.ParseUint(r.Stats()["term"], 10, 64); err == nil {
					m["term"] = t
				}
			case raft.LeaderObservation:
				m["ev"] = "leader"
				m["leader"] = string(d.Leader)
			case raft.RequestVoteRequest:
				m["ev"] = "vote_request"
				m["candidate"] = string(d.Candidate)
				m["term"] = d.Term
			default:
				continue
			}
			emit(m)
		}
	}()

	if err := r.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		fmt.Fprintf(os.Stderr, "bootstrap: %v\n", err)
		os.Exit(1)
	}
	emit(map[string]interface{}{"ev": "ready", "id": *id, "addr": addr, "t_ns": time.Now().UnixNano()})
	select {} // until killed
}
