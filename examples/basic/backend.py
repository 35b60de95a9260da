"""Stand-in for an API server: answers /health and /api/time on $PORT, stops cleanly on SIGTERM."""
import http.server
import json
import os
import signal
import sys
import time

PORT = int(os.environ.get("PORT", "4001"))
INSTANCE = os.environ.get("SUPERVISOR_INSTANCE", "0")


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = {"ok": True}
        elif self.path == "/api/time":
            body = {"time": time.time(), "instance": INSTANCE}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        print("request " + fmt % args, flush=True)


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)

    def stop(signum, _frame):
        print(f"backend got signal {signum}, shutting down", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"backend listening on 127.0.0.1:{PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
