// Command oracle replays request targets through the same gorilla/mux
// router that dockerd builds, and prints which route serves each one.
// It produces expected.txt, against which dockgate-wire's api tests check the
// Rust normalizer and route table:
//
//	go mod tidy   # fetches github.com/gorilla/mux v1.8.1 (dockerd's version)
//	go run . < cases.txt > expected.txt
//
// The cases are the lines of stdin, then every route template filled with a
// few values, under several methods, with and without a version prefix.
// Input lines are "METHOD TARGET"; blank lines and lines starting with '#'
// are skipped. Percent escapes in TARGET are sent as-is. A TARGET may use
// \xHH to put a raw byte on the request line.
//
// Output lines are "FLAVOR METHOD TARGET RESULT" separated by tabs, where
// FLAVOR is "legacy", "current", or "both" when they agree, and RESULT is
// one of
//
//	badrequest            net/http refuses the request line
//	redirect LOCATION     mux answers 301 (unclean path)
//	notfound              no route (dockerd answers 404 for 404 and 405)
//	route M TEMPLATE K=V  the route registered as (M, TEMPLATE) serves it;
//	                      M is "*" for a route without a method matcher
//
// The route lists are dockerd's registration order, extracted from
// github.com/moby/moby: "legacy" is engine 20.10 (api/server/router/*,
// cmd/dockerd/daemon.go initRouter, api/server/server.go createMux),
// "current" is the master branch (daemon/server/router/*,
// daemon/command/daemon.go buildRouters, daemon/server/server.go CreateMux).
package main

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
)

type route struct {
	method string // "" registers the route without a method matcher
	path   string
	// versioned routes are registered twice: "/v{version:[0-9.]+}"+path, then path.
	versioned bool
}

var legacy = []route{
	{"GET", "/containers/{name:.*}/checkpoints", true},
	{"POST", "/containers/{name:.*}/checkpoints", true},
	{"DELETE", "/containers/{name}/checkpoints/{checkpoint}", true},
	{"HEAD", "/containers/{name:.*}/archive", true},
	{"GET", "/containers/json", true},
	{"GET", "/containers/{name:.*}/export", true},
	{"GET", "/containers/{name:.*}/changes", true},
	{"GET", "/containers/{name:.*}/json", true},
	{"GET", "/containers/{name:.*}/top", true},
	{"GET", "/containers/{name:.*}/logs", true},
	{"GET", "/containers/{name:.*}/stats", true},
	{"GET", "/containers/{name:.*}/attach/ws", true},
	{"GET", "/exec/{id:.*}/json", true},
	{"GET", "/containers/{name:.*}/archive", true},
	{"POST", "/containers/create", true},
	{"POST", "/containers/{name:.*}/kill", true},
	{"POST", "/containers/{name:.*}/pause", true},
	{"POST", "/containers/{name:.*}/unpause", true},
	{"POST", "/containers/{name:.*}/restart", true},
	{"POST", "/containers/{name:.*}/start", true},
	{"POST", "/containers/{name:.*}/stop", true},
	{"POST", "/containers/{name:.*}/wait", true},
	{"POST", "/containers/{name:.*}/resize", true},
	{"POST", "/containers/{name:.*}/attach", true},
	{"POST", "/containers/{name:.*}/copy", true},
	{"POST", "/containers/{name:.*}/exec", true},
	{"POST", "/exec/{name:.*}/start", true},
	{"POST", "/exec/{name:.*}/resize", true},
	{"POST", "/containers/{name:.*}/rename", true},
	{"POST", "/containers/{name:.*}/update", true},
	{"POST", "/containers/prune", true},
	{"POST", "/commit", true},
	{"PUT", "/containers/{name:.*}/archive", true},
	{"DELETE", "/containers/{name:.*}", true},
	{"GET", "/images/json", true},
	{"GET", "/images/search", true},
	{"GET", "/images/get", true},
	{"GET", "/images/{name:.*}/get", true},
	{"GET", "/images/{name:.*}/history", true},
	{"GET", "/images/{name:.*}/json", true},
	{"POST", "/images/load", true},
	{"POST", "/images/create", true},
	{"POST", "/images/{name:.*}/push", true},
	{"POST", "/images/{name:.*}/tag", true},
	{"POST", "/images/prune", true},
	{"DELETE", "/images/{name:.*}", true},
	{"OPTIONS", "/{anyroute:.*}", true},
	{"GET", "/_ping", true},
	{"HEAD", "/_ping", true},
	{"GET", "/events", true},
	{"GET", "/info", true},
	{"GET", "/version", true},
	{"GET", "/system/df", true},
	{"POST", "/auth", true},
	{"GET", "/volumes", true},
	{"GET", "/volumes/{name:.*}", true},
	{"POST", "/volumes/create", true},
	{"POST", "/volumes/prune", true},
	{"DELETE", "/volumes/{name:.*}", true},
	{"POST", "/build", true},
	{"POST", "/build/prune", true},
	{"POST", "/build/cancel", true},
	{"POST", "/session", true},
	{"POST", "/swarm/init", true},
	{"POST", "/swarm/join", true},
	{"POST", "/swarm/leave", true},
	{"GET", "/swarm", true},
	{"GET", "/swarm/unlockkey", true},
	{"POST", "/swarm/update", true},
	{"POST", "/swarm/unlock", true},
	{"GET", "/services", true},
	{"GET", "/services/{id}", true},
	{"POST", "/services/create", true},
	{"POST", "/services/{id}/update", true},
	{"DELETE", "/services/{id}", true},
	{"GET", "/services/{id}/logs", true},
	{"GET", "/nodes", true},
	{"GET", "/nodes/{id}", true},
	{"DELETE", "/nodes/{id}", true},
	{"POST", "/nodes/{id}/update", true},
	{"GET", "/tasks", true},
	{"GET", "/tasks/{id}", true},
	{"GET", "/tasks/{id}/logs", true},
	{"GET", "/secrets", true},
	{"POST", "/secrets/create", true},
	{"DELETE", "/secrets/{id}", true},
	{"GET", "/secrets/{id}", true},
	{"POST", "/secrets/{id}/update", true},
	{"GET", "/configs", true},
	{"POST", "/configs/create", true},
	{"DELETE", "/configs/{id}", true},
	{"GET", "/configs/{id}", true},
	{"POST", "/configs/{id}/update", true},
	{"GET", "/plugins", true},
	{"GET", "/plugins/{name:.*}/json", true},
	{"GET", "/plugins/privileges", true},
	{"DELETE", "/plugins/{name:.*}", true},
	{"POST", "/plugins/{name:.*}/enable", true},
	{"POST", "/plugins/{name:.*}/disable", true},
	{"POST", "/plugins/pull", true},
	{"POST", "/plugins/{name:.*}/push", true},
	{"POST", "/plugins/{name:.*}/upgrade", true},
	{"POST", "/plugins/{name:.*}/set", true},
	{"POST", "/plugins/create", true},
	{"GET", "/distribution/{name:.*}/json", true},
	{"POST", "/grpc", true},
	{"GET", "/networks", true},
	{"GET", "/networks/", true},
	{"GET", "/networks/{id:.+}", true},
	{"POST", "/networks/create", true},
	{"POST", "/networks/{id:.*}/connect", true},
	{"POST", "/networks/{id:.*}/disconnect", true},
	{"POST", "/networks/prune", true},
	{"DELETE", "/networks/{id:.*}", true},
	{"", "/debug/vars", false},
	{"", "/debug/pprof/", false},
	{"", "/debug/pprof/cmdline", false},
	{"", "/debug/pprof/profile", false},
	{"", "/debug/pprof/symbol", false},
	{"", "/debug/pprof/trace", false},
	{"", "/debug/pprof/{name}", false},
}

var current = []route{
	{"GET", "/containers/{name:.*}/checkpoints", true},
	{"POST", "/containers/{name:.*}/checkpoints", true},
	{"DELETE", "/containers/{name}/checkpoints/{checkpoint}", true},
	{"HEAD", "/containers/{name:.*}/archive", true},
	{"GET", "/containers/json", true},
	{"GET", "/containers/{name:.*}/export", true},
	{"GET", "/containers/{name:.*}/changes", true},
	{"GET", "/containers/{name:.*}/json", true},
	{"GET", "/containers/{name:.*}/top", true},
	{"GET", "/containers/{name:.*}/logs", true},
	{"GET", "/containers/{name:.*}/stats", true},
	{"GET", "/containers/{name:.*}/attach/ws", true},
	{"GET", "/exec/{id:.*}/json", true},
	{"GET", "/containers/{name:.*}/archive", true},
	{"POST", "/containers/create", true},
	{"POST", "/containers/{name:.*}/kill", true},
	{"POST", "/containers/{name:.*}/pause", true},
	{"POST", "/containers/{name:.*}/unpause", true},
	{"POST", "/containers/{name:.*}/restart", true},
	{"POST", "/containers/{name:.*}/start", true},
	{"POST", "/containers/{name:.*}/stop", true},
	{"POST", "/containers/{name:.*}/wait", true},
	{"POST", "/containers/{name:.*}/resize", true},
	{"POST", "/containers/{name:.*}/attach", true},
	{"POST", "/containers/{name:.*}/exec", true},
	{"POST", "/exec/{name:.*}/start", true},
	{"POST", "/exec/{name:.*}/resize", true},
	{"POST", "/containers/{name:.*}/rename", true},
	{"POST", "/containers/{name:.*}/update", true},
	{"POST", "/containers/prune", true},
	{"POST", "/commit", true},
	{"PUT", "/containers/{name:.*}/archive", true},
	{"DELETE", "/containers/{name:.*}", true},
	{"GET", "/images/json", true},
	{"GET", "/images/search", true},
	{"GET", "/images/get", true},
	{"GET", "/images/{name:.*}/get", true},
	{"GET", "/images/{name:.*}/history", true},
	{"GET", "/images/{name:.*}/json", true},
	{"GET", "/images/{name:.*}/attestations", true},
	{"POST", "/images/load", true},
	{"POST", "/images/create", true},
	{"POST", "/images/{name:.*}/push", true},
	{"POST", "/images/{name:.*}/tag", true},
	{"POST", "/images/prune", true},
	{"DELETE", "/images/{name:.*}", true},
	{"OPTIONS", "/{anyroute:.*}", true},
	{"GET", "/_ping", true},
	{"HEAD", "/_ping", true},
	{"GET", "/events", true},
	{"GET", "/info", true},
	{"GET", "/version", true},
	{"GET", "/system/df", true},
	{"POST", "/auth", true},
	{"GET", "/volumes", true},
	{"GET", "/volumes/{name:.*}", true},
	{"POST", "/volumes/create", true},
	{"POST", "/volumes/prune", true},
	{"PUT", "/volumes/{name:.*}", true},
	{"DELETE", "/volumes/{name:.*}", true},
	{"POST", "/build", true},
	{"POST", "/build/prune", true},
	{"POST", "/build/cancel", true},
	{"POST", "/session", true},
	{"POST", "/swarm/init", true},
	{"POST", "/swarm/join", true},
	{"POST", "/swarm/leave", true},
	{"GET", "/swarm", true},
	{"GET", "/swarm/unlockkey", true},
	{"POST", "/swarm/update", true},
	{"POST", "/swarm/unlock", true},
	{"GET", "/services", true},
	{"GET", "/services/{id}", true},
	{"POST", "/services/create", true},
	{"POST", "/services/{id}/update", true},
	{"DELETE", "/services/{id}", true},
	{"GET", "/services/{id}/logs", true},
	{"GET", "/nodes", true},
	{"GET", "/nodes/{id}", true},
	{"DELETE", "/nodes/{id}", true},
	{"POST", "/nodes/{id}/update", true},
	{"GET", "/tasks", true},
	{"GET", "/tasks/{id}", true},
	{"GET", "/tasks/{id}/logs", true},
	{"GET", "/secrets", true},
	{"POST", "/secrets/create", true},
	{"DELETE", "/secrets/{id}", true},
	{"GET", "/secrets/{id}", true},
	{"POST", "/secrets/{id}/update", true},
	{"GET", "/configs", true},
	{"POST", "/configs/create", true},
	{"DELETE", "/configs/{id}", true},
	{"GET", "/configs/{id}", true},
	{"POST", "/configs/{id}/update", true},
	{"GET", "/plugins", true},
	{"GET", "/plugins/{name:.*}/json", true},
	{"GET", "/plugins/privileges", true},
	{"DELETE", "/plugins/{name:.*}", true},
	{"POST", "/plugins/{name:.*}/enable", true},
	{"POST", "/plugins/{name:.*}/disable", true},
	{"POST", "/plugins/pull", true},
	{"POST", "/plugins/{name:.*}/push", true},
	{"POST", "/plugins/{name:.*}/upgrade", true},
	{"POST", "/plugins/{name:.*}/set", true},
	{"POST", "/plugins/create", true},
	{"GET", "/distribution/{name:.*}/json", true},
	{"GET", "/networks", true},
	{"GET", "/networks/", true},
	{"GET", "/networks/{id:.+}", true},
	{"POST", "/networks/create", true},
	{"POST", "/networks/{id:.*}/connect", true},
	{"POST", "/networks/{id:.*}/disconnect", true},
	{"POST", "/networks/prune", true},
	{"DELETE", "/networks/{id:.*}", true},
	{"GET", "/debug/vars", true},
	{"GET", "/debug/pprof/", true},
	{"GET", "/debug/pprof/cmdline", true},
	{"GET", "/debug/pprof/profile", true},
	{"GET", "/debug/pprof/symbol", true},
	{"GET", "/debug/pprof/trace", true},
	{"GET", "/debug/pprof/{name}", true},
	{"POST", "/grpc", true},
}

const versionMatcher = "/v{version:[0-9.]+}"

func build(routes []route) *mux.Router {
	m := mux.NewRouter()
	for _, r := range routes {
		h := handler(r)
		if r.versioned {
			m.Path(versionMatcher + r.path).Methods(r.method).Handler(h)
			m.Path(r.path).Methods(r.method).Handler(h)
		} else {
			m.Path(r.path).Handler(h)
		}
	}
	notFound := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "notfound")
	})
	m.HandleFunc(versionMatcher+"/{path:.*}", notFound)
	m.NotFoundHandler = notFound
	m.MethodNotAllowedHandler = notFound
	return m
}

func handler(r route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		method := r.method
		if method == "" {
			method = "*"
		}
		vars := mux.Vars(req)
		keys := make([]string, 0, len(vars))
		for k := range vars {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := "route " + method + " " + r.path
		for _, k := range keys {
			out += " " + k + "=" + strconv.Quote(vars[k])
		}
		fmt.Fprint(w, out)
	})
}

// rawTarget turns \xHH escapes into raw bytes.
func rawTarget(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func serve(m *mux.Router, method, target string) string {
	raw := method + " " + rawTarget(target) + " HTTP/1.1\r\nHost: localhost\r\n\r\n"
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		return "badrequest"
	}
	rec := httptest.NewRecorder()
	m.ServeHTTP(rec, req)
	switch rec.Code {
	case http.StatusMovedPermanently:
		return "redirect " + rec.Header().Get("Location")
	case http.StatusNotFound:
		return "notfound"
	case http.StatusOK:
		return rec.Body.String()
	}
	return "status " + strconv.Itoa(rec.Code)
}

// generated fills every template with each value, for each method and
// prefix.
func generated() []string {
	variable := regexp.MustCompile(`\{[^}]*\}`)
	seen := map[string]bool{}
	var cases []string
	for _, routes := range [][]route{legacy, current} {
		for _, r := range routes {
			for _, value := range []string{"x", "json", "a/b"} {
				path := variable.ReplaceAllLiteralString(r.path, value)
				for _, method := range []string{"GET", "POST", "PUT", "DELETE", "HEAD"} {
					for _, prefix := range []string{"", "/v1.41"} {
						c := method + " " + prefix + path
						if !seen[c] {
							seen[c] = true
							cases = append(cases, c)
						}
					}
				}
			}
		}
	}
	return cases
}

func main() {
	var cases []string
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		line := in.Text()
		if line != "" && !strings.HasPrefix(line, "#") {
			cases = append(cases, line)
		}
	}
	if err := in.Err(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	legacyMux, currentMux := build(legacy), build(current)
	for _, c := range append(cases, generated()...) {
		method, target, ok := strings.Cut(c, " ")
		if !ok {
			fmt.Fprintln(os.Stderr, "bad case:", c)
			os.Exit(1)
		}
		l, r := serve(legacyMux, method, target), serve(currentMux, method, target)
		if l == r {
			fmt.Printf("both\t%s\t%s\t%s\n", method, target, l)
		} else {
			fmt.Printf("legacy\t%s\t%s\t%s\n", method, target, l)
			fmt.Printf("current\t%s\t%s\t%s\n", method, target, r)
		}
	}
}
