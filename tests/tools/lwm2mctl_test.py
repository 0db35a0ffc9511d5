#!/usr/bin/env python3
"""tools/lwm2mctl against a fake API server on loopback: each command must send exactly the
request the API documents (method, path, query, token, body) and print and exit as its help
says. The tool runs as a separate process, as operators run it."""

import http.server
import importlib.machinery
import importlib.util
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL = os.path.normpath(os.path.join(HERE, "..", "..", "tools", "lwm2mctl"))
# Every wait below is bounded by this, so a broken tool fails the test instead of hanging it.
PROCESS_TIMEOUT = 30
# How long a fake stream stays open after its frames at most (the tool is expected to stop
# well before).
HOLD_SECONDS = 15


def load_tool_module():
    loader = importlib.machinery.SourceFileLoader("lwm2mctl", TOOL)
    spec = importlib.util.spec_from_loader("lwm2mctl", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class FakeApi:
    """An HTTP server that records every request and answers from a script: `replies` are
    used in order, then `default`. GET /api/v1/events streams `frames` (chunked), then holds
    the stream open when `hold` is set, else ends it."""

    def __init__(self, tls_context=None):
        self.requests = []
        self.replies = []
        self.default = (200, "application/json", b"{}")
        self.frames = None
        self.hold = False
        self.delay = 0
        self.released = threading.Event()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urllib.parse.urlsplit(self.path)
                fake.requests.append({
                    "method": self.command,
                    "path": parts.path,
                    "query": urllib.parse.parse_qsl(parts.query, keep_blank_values=True),
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                })
                if fake.delay:
                    fake.released.wait(fake.delay)
                if parts.path == "/api/v1/events" and fake.frames is not None:
                    self._stream()
                    return
                status, content_type, reply = fake.replies.pop(0) if fake.replies else fake.default
                self.send_response(status)
                if content_type:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for frame in fake.frames:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
                        self.wfile.flush()
                        # Separate reads on the client side, so that frames split across
                        # chunks are exercised.
                        time.sleep(0.02)
                    if fake.hold:
                        fake.released.wait(HOLD_SECONDS)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    pass  # the client left, as it should after --count
                self.close_connection = True

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # failed TLS handshakes are part of the tests

        self.server = Server(("127.0.0.1", 0), Handler)
        if tls_context is not None:
            self.server.socket = tls_context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls_context is not None else "http"
        self.url = "%s://127.0.0.1:%d" % (scheme, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def reply(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.replies.append((status, content_type, data))

    def stop(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(PROCESS_TIMEOUT)


class ToolTestCase(unittest.TestCase):
    def setUp(self):
        self.api = FakeApi()
        self.addCleanup(self.api.stop)
        # The tool reads ./data/api-token by default: an empty directory of our own keeps a
        # token file of the checkout out of the tests.
        self.cwd = tempfile.mkdtemp(prefix="lwm2mctl-test-")
        self.addCleanup(shutil.rmtree, self.cwd, True)

    def run_tool(self, *argv, url=None, env=None, stdin=None):
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("LWM2MD_URL", "LWM2MD_TOKEN", "http_proxy", "HTTP_PROXY")}
        environment.update(env or {})
        command = [sys.executable, TOOL]
        if url is not False:
            command += ["--url", url or self.api.url]
        result = subprocess.run(command + list(argv), cwd=self.cwd, env=environment,
                                input=stdin, capture_output=True, timeout=PROCESS_TIMEOUT)
        return result.returncode, result.stdout.decode(), result.stderr.decode()

    def only_request(self):
        self.assertEqual(len(self.api.requests), 1, self.api.requests)
        return self.api.requests[0]

    def assert_json_request(self, request, method, path, body):
        self.assertEqual(request["method"], method)
        self.assertEqual(request["path"], path)
        self.assertEqual(request["headers"].get("content-type"), "application/json")
        self.assertEqual(json.loads(request["body"]), body)


class ActionTest(ToolTestCase):
    def test_read_sends_paths_options_and_token_and_prints_result(self):
        result = {"source": "read", "data": {"device": {"0": {"manufacturer": "Tartabit"}}}}
        self.api.reply(200, result)
        code, out, err = self.run_tool(
            "--token", "s3cret", "read", "urn:imei:1", "/3/0", "6/0/0", "--encoding", "tlv",
            "--composite", "--context", '{"job": 7}', "--timeout-ms", "5000")
        self.assertEqual((code, err), (0, ""))
        request = self.only_request()
        self.assertEqual(request["headers"].get("authorization"), "Bearer s3cret")
        self.assert_json_request(
            request, "POST", "/api/v1/endpoints/urn%3Aimei%3A1/actions/read",
            {"paths": ["3/0", "6/0/0"],
             "options": {"async": False, "context": {"job": 7}, "encoding": "tlv",
                         "composite": True, "timeoutMs": 5000}})
        self.assertEqual(json.loads(out), result)
        self.assertIn('\n  "source": "read"', out)  # indented for people

    def test_each_action_sends_its_documented_body(self):
        cases = [
            (["write", "dev1", "3/0/15", "UTC"], "write", {"path": "3/0/15", "data": "UTC"}),
            (["write", "dev1", "1/0/1", "300"], "write", {"path": "1/0/1", "data": 300}),
            (["write", "dev1", "1/0/6", "true"], "write", {"path": "1/0/6", "data": True}),
            (["write", "dev1", "3/0/15", "--string", "300"], "write",
             {"path": "3/0/15", "data": "300"}),
            (["write", "dev1", "3/0/15", "NaN"], "write", {"path": "3/0/15", "data": "NaN"}),
            (["write", "dev1", "3/0", '{"14":"+4:00","15":"EDT"}'], "write",
             {"path": "3/0", "data": {"14": "+4:00", "15": "EDT"}}),
            (["write-multi", "dev1", '{"3":{"0":{"15":"UTC"}},"1":{"0":{"7":86400}}}'],
             "writeMulti", {"data": {"3": {"0": {"15": "UTC"}}, "1": {"0": {"7": 86400}}}}),
            (["create", "dev1", "19/0", '{"0":5,"1":"ABC"}'], "create",
             {"path": "19/0", "data": {"0": 5, "1": "ABC"}}),
            (["delete", "dev1", "19/0"], "delete", {"path": "19/0"}),
            (["exec", "dev1", "3/0/4"], "exec", {"path": "3/0/4"}),
            (["exec", "dev1", "3/0/4", "0=abc123", "1"], "execWithArgs",
             {"path": "3/0/4", "args": {"0": "abc123", "1": None}}),
            (["exec", "dev1", "5/0/2", "0=a=b"], "execWithArgs",
             {"path": "5/0/2", "args": {"0": "a=b"}}),
            (["discover", "dev1", "3/0"], "discover", {"path": "3/0"}),
            (["write-attributes", "dev1", "3/0/13", "pmin=10", "pmax=60", "gt=5.5", "lt=1",
              "st=0.5", "epmin=1", "epmax=30"], "writeAttributes",
             {"path": "3/0/13", "attributes": {"pmin": 10, "pmax": 60, "gt": 5.5, "lt": 1,
                                               "st": 0.5, "epmin": 1, "epmax": 30}}),
            (["observe", "dev1", "3/0/13", "6/0"], "observe", {"paths": ["3/0/13", "6/0"]}),
            (["observe-cancel", "dev1", "9f2c01a4b3d2e1f0"], "observeCancel",
             {"token": "9f2c01a4b3d2e1f0"}),
        ]
        for argv, action, body in cases:
            with self.subTest(argv=argv):
                self.api.requests.clear()
                code, out, err = self.run_tool(*argv)
                self.assertEqual((code, err), (0, ""))
                body = dict(body, options={"async": False})
                self.assert_json_request(self.only_request(), "POST",
                                         "/api/v1/endpoints/dev1/actions/" + action, body)

    def test_json_arguments_may_come_from_a_file(self):
        path = os.path.join(self.cwd, "instance.json")
        with open(path, "w") as f:
            f.write('{"0": 5, "1": "ABC"}')
        code, _, err = self.run_tool("create", "dev1", "19/0", "@" + path,
                                     "--context", '"from-file"')
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(self.only_request()["body"]),
                         {"path": "19/0", "data": {"0": 5, "1": "ABC"},
                          "options": {"async": False, "context": "from-file"}})

    def test_async_sends_async_and_prints_the_202_body(self):
        self.api.reply(202, {"requestId": "r-42", "queued": True})
        code, out, err = self.run_tool("read", "dev1", "3/0", "--async")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(self.only_request()["body"]),
                         {"paths": ["3/0"], "options": {"async": True}})
        self.assertEqual(json.loads(out), {"requestId": "r-42", "queued": True})

    def test_json_flag_prints_the_body_as_sent_before_or_after_the_command(self):
        body = b'{"source":"discover","path":"3/0","links":"</3/0>,</3/0/1>"}'
        for argv in (["--json", "discover", "dev1", "3/0"], ["discover", "dev1", "3/0", "--json"]):
            with self.subTest(argv=argv):
                self.api.reply(200, body)
                code, out, err = self.run_tool(*argv)
                self.assertEqual((code, err), (0, ""))
                self.assertEqual(out, body.decode() + "\n")

    def test_last_known_uses_the_get_route_with_only_the_flags_given(self):
        values = {"3": {"0": {"0": "Tartabit"}}, "~3": {"0": {"0": "2026-11-24T10:00:00Z"}}}
        self.api.reply(200, values)
        code, out, _ = self.run_tool("last-known", "urn:imei:1")
        self.assertEqual(code, 0)
        self.assertEqual(json.loads(out), values)
        self.run_tool("last-known", "dev1", "--no-times", "--names")
        first, second = self.api.requests
        self.assertEqual((first["method"], first["path"], first["query"]),
                         ("GET", "/api/v1/endpoints/urn%3Aimei%3A1/lastKnown", []))
        self.assertEqual((second["method"], second["path"], second["query"]),
                         ("GET", "/api/v1/endpoints/dev1/lastKnown",
                          [("includeUpdateTimes", "false"), ("translateIds", "strings")]))


class ErrorTest(ToolTestCase):
    def test_server_errors_exit_1_with_status_text_and_partial_errors(self):
        cases = [
            (400, {"error": "paths: required"}),
            (404, {"error": "endpoint \"dev1\" is not registered"}),
            (422, {"error": "encoding: senml-cbor needs LwM2M 1.1"}),
            (429, {"error": "too many requests for this endpoint"}),
            (502, {"error": "coap: not found", "partialErrors": {"3/0/100": "coap: not found"}}),
            (503, {"error": "queue full"}),
            (504, {"error": "device did not respond to the request"}),
        ]
        for status, body in cases:
            with self.subTest(status=status):
                self.api.reply(status, body)
                code, out, err = self.run_tool("read", "dev1", "3/0", "3/0/100")
                self.assertEqual(code, 1)
                self.assertEqual(out, "")
                self.assertIn("HTTP %d: %s" % (status, body["error"]), err)
                if "partialErrors" in body:
                    self.assertIn("3/0/100: coap: not found", err)

    def test_error_without_json_body_shows_the_text(self):
        self.api.reply(500, b"internal failure", content_type="text/plain")
        code, out, err = self.run_tool("settings")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("HTTP 500: internal failure", err)

    def test_401_says_how_to_give_the_token(self):
        self.api.reply(401, {"error": "missing or invalid bearer token"})
        code, _, err = self.run_tool("endpoints")
        self.assertEqual(code, 1)
        self.assertIn("HTTP 401: missing or invalid bearer token", err)
        self.assertIn("--token", err)

    def test_connection_refused_exits_3_naming_the_url(self):
        # Bound but not listening: connecting is refused, and no other process can take the
        # port meanwhile.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            url = "http://127.0.0.1:%d" % sock.getsockname()[1]
            code, out, err = self.run_tool("endpoints", "list", url=url)
        self.assertEqual((code, out), (3, ""))
        self.assertIn("cannot connect to " + url, err)
        self.assertIn("refused", err)

    def test_no_answer_in_time_exits_3(self):
        self.api.delay = 10
        start = time.monotonic()
        code, _, err = self.run_tool("--timeout", "0.5", "settings", "get")
        self.assertLess(time.monotonic() - start, 8)
        self.assertEqual(code, 3)
        self.assertIn("no answer from " + self.api.url, err)

    def test_usage_errors_exit_2_and_send_nothing(self):
        cases = [
            ["write-multi", "dev1", "{not json"],
            ["write-multi", "dev1", "[1, 2]"],
            ["create", "dev1", "19/0", "@/nonexistent/file.json"],
            ["exec", "dev1", "3/0/4", "10=x"],
            ["exec", "dev1", "3/0/4", "0=a", "0=b"],
            ["write-attributes", "dev1", "3/0/13", "pmin=abc"],
            ["write-attributes", "dev1", "3/0/13", "period=5"],
            ["write-attributes", "dev1", "3/0/13"],
            ["read", "dev1", "3/0", "--context", "{oops"],
            ["read", "dev1", "3/0", "--encoding", "xml"],
            ["read", "dev1", "3/0", "--sync", "--async"],
            ["read", "dev1"],
            ["endpoints", "create", "dev1", "--psk-identity", "id-only"],
            ["settings", "set", "coapMaxRetransmit"],
            ["objects", "upload", "/nonexistent/object.xml"],
            ["events", "--count", "0"],
            ["frobnicate"],
            ["--token-file", "/nonexistent/token", "settings"],
            ["--token", "two words", "settings"],
        ]
        for argv in cases:
            with self.subTest(argv=argv):
                code, out, err = self.run_tool(*argv)
                self.assertEqual((code, out), (2, ""))
                self.assertNotEqual(err, "")
        code, _, err = self.run_tool("settings", url="localhost:8080")
        self.assertEqual(code, 2)
        self.assertIn("--url", err)
        self.assertEqual(self.api.requests, [])


class TokenAndUrlTest(ToolTestCase):
    def authorization(self):
        request = self.api.requests.pop()
        return request["headers"].get("authorization")

    def test_token_sources_in_order(self):
        os.mkdir(os.path.join(self.cwd, "data"))
        with open(os.path.join(self.cwd, "data", "api-token"), "w") as f:
            f.write("from-default-file\n")
        other = os.path.join(self.cwd, "other-token")
        with open(other, "w") as f:
            f.write("  from-other-file \n")

        self.run_tool("settings")
        self.assertEqual(self.authorization(), "Bearer from-default-file")
        self.run_tool("settings", "--token-file", other)
        self.assertEqual(self.authorization(), "Bearer from-other-file")
        self.run_tool("settings", env={"LWM2MD_TOKEN": "from-env"})
        self.assertEqual(self.authorization(), "Bearer from-env")
        self.run_tool("--token", "from-option", "settings", env={"LWM2MD_TOKEN": "from-env"})
        self.assertEqual(self.authorization(), "Bearer from-option")

    def test_no_token_anywhere_sends_no_authorization(self):
        code, _, _ = self.run_tool("settings")
        self.assertEqual(code, 0)
        self.assertIsNone(self.authorization())

    def test_url_from_environment(self):
        code, _, err = self.run_tool("settings", url=False, env={"LWM2MD_URL": self.api.url})
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(self.only_request()["path"], "/api/v1/settings")


class ResourceCommandTest(ToolTestCase):
    def test_endpoints(self):
        self.api.reply(201, {"name": "urn:imei:1", "securityMode": "psk", "pskKeySet": True})
        code, out, err = self.run_tool(
            "endpoints", "create", "urn:imei:1", "--psk-identity", "dev-0001",
            "--psk-key-hex", "000102030405060708090a0b0c0d0e0f", "--missing-timeout", "3600",
            "--tag", "fleet-a", "--tag", "lab")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)["pskKeySet"], True)
        self.assert_json_request(self.api.requests.pop(), "POST", "/api/v1/endpoints", {
            "name": "urn:imei:1", "securityMode": "psk", "pskIdentity": "dev-0001",
            "pskKey": "000102030405060708090a0b0c0d0e0f", "missingTimeoutSeconds": 3600,
            "tags": ["fleet-a", "lab"]})

        self.run_tool("endpoints", "create", "dev2")
        self.assert_json_request(self.api.requests.pop(), "POST", "/api/v1/endpoints",
                                 {"name": "dev2", "securityMode": "none"})
        self.run_tool("endpoints", "create", "dev3", "--thumbprint", "ab" * 32)
        self.assert_json_request(self.api.requests.pop(), "POST", "/api/v1/endpoints",
                                 {"name": "dev3", "securityMode": "x509",
                                  "certificateThumbprint": "ab" * 32})

        for argv, method, path, query in [
                (["endpoints"], "GET", "/api/v1/endpoints", []),
                (["endpoints", "list", "--limit", "2", "--after", "dev1"], "GET",
                 "/api/v1/endpoints", [("limit", "2"), ("after", "dev1")]),
                (["endpoints", "get", "urn:imei:1"], "GET", "/api/v1/endpoints/urn%3Aimei%3A1",
                 [])]:
            with self.subTest(argv=argv):
                code, _, _ = self.run_tool(*argv)
                self.assertEqual(code, 0)
                request = self.api.requests.pop()
                self.assertEqual((request["method"], request["path"], request["query"]),
                                 (method, path, query))

        self.api.reply(204, b"", content_type=None)
        code, out, err = self.run_tool("endpoints", "delete", "dev2")
        self.assertEqual((code, out, err), (0, "", ""))
        request = self.api.requests.pop()
        self.assertEqual((request["method"], request["path"]), ("DELETE", "/api/v1/endpoints/dev2"))

    def test_endpoints_list_all_follows_the_cursor(self):
        self.api.reply(200, {"endpoints": [{"name": "a"}, {"name": "b"}], "next": "b",
                             "total": 3})
        self.api.reply(200, {"endpoints": [{"name": "c"}], "total": 3})
        code, out, err = self.run_tool("endpoints", "list", "--all", "--limit", "2")
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out), {"endpoints": [{"name": "a"}, {"name": "b"},
                                                         {"name": "c"}], "total": 3})
        self.assertEqual([r["query"] for r in self.api.requests],
                         [[("limit", "2")], [("limit", "2"), ("after", "b")]])

    def test_settings(self):
        self.api.reply(200, {"coapMaxRetransmit": 4})
        code, out, _ = self.run_tool("settings", "get")
        self.assertEqual((code, json.loads(out)), (0, {"coapMaxRetransmit": 4}))
        self.assertEqual(self.api.requests.pop()["method"], "GET")
        code, _, err = self.run_tool("settings", "set", "coapMaxRetransmit=5",
                                     "allowUnknownEndpoints=true", "coapAckRandomFactor=1.25")
        self.assertEqual((code, err), (0, ""))
        self.assert_json_request(self.api.requests.pop(), "PATCH", "/api/v1/settings",
                                 {"coapMaxRetransmit": 5, "allowUnknownEndpoints": True,
                                  "coapAckRandomFactor": 1.25})

    def test_objects(self):
        xml = b'<?xml version="1.0"?><LWM2M><Object><ObjectID>30000</ObjectID></Object></LWM2M>'
        path = os.path.join(self.cwd, "object.xml")
        with open(path, "wb") as f:
            f.write(xml)
        self.api.reply(201, {"id": 30000, "custom": True})
        code, out, err = self.run_tool("objects", "upload", path)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out)["id"], 30000)
        request = self.api.requests.pop()
        self.assertEqual((request["method"], request["path"]), ("POST", "/api/v1/objects"))
        self.assertEqual(request["headers"].get("content-type"), "application/xml")
        self.assertEqual(request["body"], xml)

        for argv, method, path, query in [
                (["objects"], "GET", "/api/v1/objects", []),
                (["objects", "get", "3303", "--version", "1.1"], "GET", "/api/v1/objects/3303",
                 [("version", "1.1")]),
                (["objects", "delete", "30000"], "DELETE", "/api/v1/objects/30000", [])]:
            with self.subTest(argv=argv):
                code, _, _ = self.run_tool(*argv)
                self.assertEqual(code, 0)
                request = self.api.requests.pop()
                self.assertEqual((request["method"], request["path"], request["query"]),
                                 (method, path, query))

    def test_billing(self):
        totals = {"days": [{"date": "2026-11-24", "counts": {"register": 1}, "billable": 1}],
                  "billableTotal": 1}
        self.api.reply(200, totals)
        code, out, _ = self.run_tool("billing", "--from", "2026-11-01", "--to", "2026-11-30",
                                     "--endpoint", "urn:imei:1")
        self.assertEqual((code, json.loads(out)), (0, totals))
        self.run_tool("billing")
        first, second = self.api.requests
        self.assertEqual((first["method"], first["path"], first["query"]),
                         ("GET", "/api/v1/billing", [("from", "2026-11-01"), ("to", "2026-11-30"),
                                                     ("endpoint", "urn:imei:1")]))
        self.assertEqual(second["query"], [])


def frame(event_type, data, sequence):
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (sequence, event_type.encode(),
                                                 json.dumps(data).encode())


class EventsTest(ToolTestCase):
    EVENTS = [
        {"type": "lwm2m.register", "endpoint": "dev1", "time": "2026-11-24T21:00:00.123Z",
         "data": {"binding": "U", "version": "1.1"}},
        {"type": "lwm2m.data", "endpoint": "dev1", "time": "2026-11-24T21:00:01.000Z",
         "data": {"source": "observe", "data": {"3": {"0": {"13": 1700000000}}}}},
        {"type": "lwm2m.deregister", "endpoint": "dev1", "time": "2026-11-24T21:00:02.000Z",
         "data": None},
    ]

    def test_count_stops_after_n_events_while_the_stream_stays_open(self):
        first, second, third = (frame(e["type"], e, i + 1) for i, e in enumerate(self.EVENTS))
        self.api.frames = [
            b": keepalive\n\n",
            first,
            second[:17], second[17:],  # a frame split across chunks
            b"event: dropped\ndata: {\"count\":3}\n\n",
            third,
        ]
        self.api.hold = True
        start = time.monotonic()
        code, out, err = self.run_tool("events", "--endpoint", "dev1", "--type",
                                       "lwm2m.register,lwm2m.data", "--type", "lwm2m.deregister",
                                       "--count", "3")
        self.assertLess(time.monotonic() - start, HOLD_SECONDS / 2)
        self.assertEqual(code, 0, err)
        lines = out.splitlines()
        self.assertEqual([json.loads(line) for line in lines], self.EVENTS)
        self.assertIn("3 events dropped", err)
        request = self.only_request()
        self.assertEqual((request["method"], request["path"]), ("GET", "/api/v1/events"))
        self.assertEqual(request["query"], [
            ("endpoint", "dev1"), ("type", "lwm2m.register,lwm2m.data,lwm2m.deregister")])
        self.assertEqual(request["headers"].get("accept"), "text/event-stream")

        self.api.requests.clear()
        code, out, _ = self.run_tool("events", "--count", "1")
        self.assertEqual((code, [json.loads(line) for line in out.splitlines()]),
                         (0, self.EVENTS[:1]))
        self.assertEqual(self.only_request()["query"], [])

    def test_wait_seconds_stops_a_quiet_stream(self):
        self.api.frames = [frame("lwm2m.register", self.EVENTS[0], 1)]
        self.api.hold = True
        start = time.monotonic()
        code, out, err = self.run_tool("events", "--wait-seconds", "1")
        elapsed = time.monotonic() - start
        self.assertEqual(code, 0, err)
        self.assertGreaterEqual(elapsed, 1)
        self.assertLess(elapsed, HOLD_SECONDS / 2)
        self.assertEqual([json.loads(line) for line in out.splitlines()], self.EVENTS[:1])

    def test_stream_ending_before_count_exits_3(self):
        self.api.frames = [frame("lwm2m.register", self.EVENTS[0], 1)]
        code, out, err = self.run_tool("events", "--count", "2")
        self.assertEqual(code, 3)
        self.assertEqual(len(out.splitlines()), 1)
        self.assertIn("ended after 1 of 2 events", err)

    def test_stream_refused_exits_1(self):
        self.api.reply(400, {"error": "type: unknown event type \"lwm2m.nope\""})
        code, out, err = self.run_tool("events", "--type", "lwm2m.nope")
        self.assertEqual((code, out), (1, ""))
        self.assertIn("HTTP 400: type: unknown event type", err)


class TimeoutTest(unittest.TestCase):
    """A synchronous action must outwait the server's own wait for the device (its timeoutMs,
    then up to 100 s of CoAP retransmissions), or the user sees a client timeout instead of
    the server's 504."""

    def timeout(self, *argv):
        tool = load_tool_module()
        return tool.http_timeout(tool.build_parser().parse_args(list(argv)))

    def test_sync_actions_wait_longer_than_the_server(self):
        self.assertGreater(self.timeout("read", "dev1", "3/0"), 30 + 100)
        self.assertGreater(self.timeout("exec", "dev1", "3/0/4", "--timeout-ms", "200000"),
                           200 + 100)
        self.assertEqual(self.timeout("read", "dev1", "3/0", "--async"), 60)
        self.assertEqual(self.timeout("settings"), 60)
        self.assertEqual(self.timeout("read", "dev1", "3/0", "--timeout", "5"), 5)


class SseParserTest(unittest.TestCase):
    """The parser alone, on the line-ending and field forms the tool must accept (WHATWG
    HTML §9.2.6) that the server does not send today."""

    def setUp(self):
        self.parser = load_tool_module().SseParser()

    def feed(self, *chunks):
        events = []
        for chunk in chunks:
            events.extend(self.parser.feed(chunk))
        return events

    def test_line_endings_and_fields(self):
        self.assertEqual(self.feed(b"\xef\xbb\xbfdata: one\r\n\r\n"), [("message", "one")])
        self.assertEqual(self.feed(b"event: a\rdata: two\r\r"), [("a", "two")])
        # CRLF split between reads is one line ending, not two.
        self.assertEqual(self.feed(b"event: b\r", b"\ndata:three\r", b"\n\r\n"),
                         [("b", "three")])
        self.assertEqual(self.feed(b"data: x\ndata:  y\n: comment\nid: 9\nretry: 5\n\n"),
                         [("message", "x\n y")])

    def test_event_without_data_is_not_dispatched(self):
        self.assertEqual(self.feed(b"event: lonely\n\n", b"data: z\n\n"), [("message", "z")])


def make_certificate(directory):
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=PROCESS_TIMEOUT)
    return cert, key


@unittest.skipIf(shutil.which("openssl") is None, "needs the openssl command (tools/setup)")
class HttpsTest(ToolTestCase):
    def setUp(self):
        super().setUp()
        self.cert, key = make_certificate(self.cwd)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.tls_api = FakeApi(context)
        self.addCleanup(self.tls_api.stop)

    def test_cacert_verifies_the_server(self):
        self.tls_api.reply(200, {"coapMaxRetransmit": 4})
        code, out, err = self.run_tool("--cacert", self.cert, "--token", "t", "settings",
                                       url=self.tls_api.url)
        self.assertEqual((code, err), (0, ""))
        self.assertEqual(json.loads(out), {"coapMaxRetransmit": 4})
        self.assertEqual(self.tls_api.requests[0]["headers"].get("authorization"), "Bearer t")

    def test_unknown_certificate_is_refused_before_sending_anything(self):
        # The system trust store does not hold the test certificate.
        code, out, err = self.run_tool("--token", "t", "settings", url=self.tls_api.url)
        self.assertEqual((code, out), (3, ""))
        self.assertIn("cannot connect to " + self.tls_api.url, err)
        self.assertIn("certificate", err)
        self.assertEqual(self.tls_api.requests, [])


if __name__ == "__main__":
    unittest.main()
