"""A stand-in for the Nomic Atlas API on 127.0.0.1: the endpoints nomic 3.9's `atlas.map_data` calls with
embeddings (read from its client: nomic/dataset.py), answering as Atlas does and keeping what was uploaded.
The client reaches it through its own ATLAS_API_PATH setting; nothing of the client is patched."""

from __future__ import annotations

import io
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pyarrow.feather as feather

ORGANIZATION = {"organization_id": "2d6e7c1a-0000-4000-8000-000000000001", "slug": "local", "plan_type": "free"}


class AtlasStandIn:
    """Start with `with AtlasStandIn() as atlas:`; `atlas.url` is the API path, `atlas.uploaded` the rows."""

    def __init__(self) -> None:
        self.projects: dict[str, dict] = {}
        self.tables: list[pa.Table] = []
        self.calls: list[str] = []
        self.index_requests: list[dict] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def uploaded(self) -> list[dict]:
        return pa.concat_tables(self.tables).to_pylist() if self.tables else []

    def __enter__(self) -> AtlasStandIn:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        atlas = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def reply(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                atlas.calls.append(f"GET {self.path}")
                parts = self.path.strip("/").split("/")
                if self.path == "/v1/user":
                    self.reply(200, {"organizations": [ORGANIZATION], "default_organization": ORGANIZATION["organization_id"]})
                elif parts[:2] == ["v1", "organization"]:
                    self.reply(200, {"id": ORGANIZATION["organization_id"]} if parts[2] == ORGANIZATION["slug"] else {})
                elif parts[:4] == ["v1", "project", "index", "job"]:
                    project = next(iter(atlas.projects.values()))
                    self.reply(200, {"index_id": project["atlas_indices"][0]["id"]})
                elif parts[:2] == ["v1", "project"] and len(parts) == 3 and parts[2] in atlas.projects:
                    self.reply(200, atlas.projects[parts[2]])
                else:
                    self.reply(404, {"detail": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                atlas.calls.append(f"POST {self.path}")
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == "/v1/project/create":
                    request = json.loads(body)
                    project_id = str(uuid.uuid4())
                    atlas.projects[project_id] = {
                        "id": project_id, "slug": request["project_name"], "project_name": request["project_name"],
                        "organization_slug": ORGANIZATION["slug"], "description": request["description"],
                        "unique_id_field": request["unique_id_field"], "modality": "embedding",
                        "total_datums_in_project": 0, "project_fields": [], "schema": None,
                        "insert_update_delete_lock": False, "atlas_indices": [],
                        "created_timestamp": "2026-01-01T00:00:00.000000+00:00"}
                    self.reply(201, {"project_id": project_id, "slug": request["project_name"]})
                elif self.path == "/v1/project/data/add/arrow":
                    table = feather.read_table(io.BytesIO(body))
                    project = atlas.projects[table.schema.metadata[b"project_id"].decode()]
                    atlas.tables.append(table)
                    project["total_datums_in_project"] += len(table)
                    project["project_fields"] = table.column_names
                    self.reply(200, {})
                elif self.path == "/v1/project/index/create":
                    request = json.loads(body)
                    atlas.index_requests.append(request)
                    index = {"id": str(uuid.uuid4()), "index_name": request["index_name"], "indexed_field": None,
                             "projections": [{"id": str(uuid.uuid4())}]}
                    atlas.projects[request["project_id"]]["atlas_indices"].append(index)
                    self.reply(200, {"job_id": str(uuid.uuid4())})
                else:
                    self.reply(404, {"detail": "not found"})

        return Handler
