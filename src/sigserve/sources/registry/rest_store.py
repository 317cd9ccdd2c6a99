"""An MLflow tracking server's REST API (`http[s]://host:port`), read with httpx only.

Speaks the same endpoints MLflow's own client uses: the model registry for versions, aliases and
stages, the logged-model and run APIs for `models:/m-…` and `runs:/…`, and the artifact proxy
(`mlflow-artifacts:/…`) for downloads, which are streamed to disk file by file. Credentials and TLS
settings are MLflow's environment variables, read once into `TrackingSettings`. Transient failures (connection errors,
timeouts, 429 and 5xx answers) are retried a bounded number of times with exponential backoff;
every failure ends as a one-line ModelNotFound naming what was asked, the server, and what to do.

The server is not trusted: its credentials go to its own origin only (scheme, host and port;
artifacts at another origin are fetched without them, and httpx drops them on a redirect to
another origin); every answer is size-capped, every listing depth- and count-capped, every
download byte-capped, and all of it runs against one deadline (`RegistryLimits`).
"""

from __future__ import annotations

import posixpath
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlparse, urlunparse

import certifi
import httpx

from sigserve.errors import ModelNotFound, RegistryLimitExceeded, UnsafeRegistryValue
from sigserve.sources.resolved import check_text, printable
from sigserve.redact import add_secret
from sigserve.sources.registry.backend import VersionRecord, unknown_model
from sigserve.sources.registry.limits import ENV_PREFIX, RegistryLimits
from sigserve.sources.registry.tracking import TrackingSettings
from sigserve.sources.registry.uri import RegisteredModelRef

API = "/api/2.0"
ARTIFACTS_ENDPOINT = "/mlflow-artifacts/artifacts"
ATTEMPTS = 4
BACKOFF_SECONDS = 0.2
MAX_SEARCH_PAGES = 20
MAX_ANSWER_BYTES = 16 << 20  # one JSON answer (a listing of ~100 000 files)
DEFAULT_PORTS = {"http": 80, "https": 443}
AUTH_HINT = "set MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD"
NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"


class _ServerRefused(ModelNotFound):
    """A 4xx answer (other than 401/403) with MLflow's error code and message, for the caller
    to turn into a message about what was asked."""

    def __init__(self, status: int, code: str | None, detail: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.detail = status, code, detail

    @property
    def not_found(self) -> bool:
        if self.code == NOT_FOUND or (self.status == 404 and self.code is None):
            return True
        return "not found" in self.detail.lower()  # an unknown alias is a 400 INVALID_PARAMETER_VALUE


class _Truncated(Exception):
    pass


class RestRegistry:
    def __init__(self, uri: str, tracking: TrackingSettings = TrackingSettings(),
                 limits: RegistryLimits = RegistryLimits()) -> None:
        self.uri = uri
        parsed = urlparse(uri)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ModelNotFound(f"Registry {uri!r} is not an http(s)://host[:port] URL of an MLflow tracking server")
        self.base = uri.rstrip("/")
        self.scheme, self.netloc, self.prefix = parsed.scheme, parsed.netloc, parsed.path.rstrip("/")
        self.server = urlunparse((parsed.scheme, parsed.netloc.rpartition("@")[2], parsed.path.rstrip("/"), "", "", ""))
        self.origin = _origin(self.base)
        add_secret(parsed.password)
        self.limits = limits
        self.deadline = time.monotonic() + self.limits.deadline_seconds
        self.attempts = ATTEMPTS
        self.credentials = _credentials(tracking)
        self.verify = _tls_verification(tracking)
        self.client = self._new_client(self.credentials)
        self._anonymous: httpx.Client | None = None

    def _new_client(self, auth: httpx.Auth | None) -> httpx.Client:
        return httpx.Client(
            timeout=httpx.Timeout(self.limits.timeout_seconds),
            verify=self.verify,
            auth=auth,
            headers={"User-Agent": "sigserve", "Accept": "application/json"},
            follow_redirects=True,  # as requests (MLflow's client) does; httpx drops credentials across origins
        )

    def _client_for(self, url: str) -> httpx.Client:
        """This server's credentials for its own origin only; any other host is asked without them."""
        if _origin(url) == self.origin:
            return self.client
        if self._anonymous is None:
            self._anonymous = self._new_client(None)
        return self._anonymous

    # Registry lookups -------------------------------------------------------------------------

    def close(self) -> None:
        self.client.close()
        if self._anonymous is not None:
            self._anonymous.close()

    def find_version(self, ref: RegisteredModelRef) -> VersionRecord:
        try:
            if ref.version is not None:
                query = {"name": ref.name, "version": ref.version}
                found = self._api("GET", "/mlflow/model-versions/get", params=query)
                version = _dict(found.get("model_version"))
            elif ref.alias is not None:
                query = {"name": ref.name, "alias": ref.alias}
                found = self._api("GET", "/mlflow/registered-models/alias", params=query)
                version = _dict(found.get("model_version"))
            else:
                body: dict[str, Any] = {"name": ref.name}
                if ref.stage is not None:
                    body["stages"] = [ref.stage]  # the server matches stages case-insensitively
                latest = self._api("POST", "/mlflow/registered-models/get-latest-versions", json=body)
                candidates = [c for c in _list_of(latest.get("model_versions")) if isinstance(c, dict)]
                if not candidates:
                    stage = f" in stage {ref.stage!r}" if ref.stage else ""
                    raise ModelNotFound(
                        f"No versions of model {ref.name!r}{stage} at {self.server}; register or "
                        f"transition a version{stage}, or ask for a version number or an alias instead"
                    )
                version = max(candidates, key=_number)
        except _ServerRefused as exc:
            raise self._explain(ref, exc) from None
        if not version.get("version"):
            raise ModelNotFound(
                f"{_capital(ref.describe())}: {self.server} answered without a model version; is it an "
                "MLflow tracking server?"
            )
        number, name = str(version["version"]), version.get("name") or ref.name
        check_text("model name from the registry", name)
        check_text("model version from the registry", number)
        aliases = _list_of(version.get("aliases"))
        if not all(isinstance(alias, str) for alias in aliases):
            raise UnsafeRegistryValue(f"{self.server} listed aliases of {ref.describe()} that are not text")
        return VersionRecord(
            name=name,
            version=number,
            source=version.get("source") or "",
            storage_location=self._download_uri(name, number),
            run_id=version.get("run_id") or None,
            stage=version.get("current_stage") or "None",
            aliases=tuple(sorted(aliases)),
        )

    def _download_uri(self, name: str, version: str) -> str | None:
        """Where MLflow's own client downloads this version from."""
        try:
            query = {"name": name, "version": version}
            found = self._api("GET", "/mlflow/model-versions/get-download-uri", params=query)
        except _ServerRefused:
            return None  # the source is still there to try
        return found.get("artifact_uri") or None  # VersionRecord checks it

    def _explain(self, ref: RegisteredModelRef, exc: _ServerRefused) -> ModelNotFound:
        if exc.not_found:
            if not self._model_exists(ref.name):
                return unknown_model(ref.name, f"at {self.server}")
            if ref.version is not None:
                return ModelNotFound(
                    f"Model {ref.name!r} has no version {ref.version} at {self.server}; check the "
                    "version number, or ask for an alias (models:/name@alias) or models:/name/latest"
                )
            if ref.alias is not None:
                return ModelNotFound(
                    f"Model {ref.name!r} has no alias @{ref.alias} at {self.server}; check the alias, "
                    "or set it with MlflowClient().set_registered_model_alias"
                )
        if ref.stage is not None and exc.status == 400:
            return ModelNotFound(
                f"Model {ref.name!r}: {ref.stage!r} is not a stage {self.server} knows ({exc.detail}); use "
                "None, Staging, Production or Archived, latest, a version number or an alias"
            )
        return ModelNotFound(f"{_capital(ref.describe())}: {exc.message}")

    def _model_exists(self, name: str) -> bool:
        try:
            self._api("GET", "/mlflow/registered-models/get", params={"name": name})
        except _ServerRefused as exc:
            return not exc.not_found
        return True

    def logged_model_location(self, model_id: str) -> str:
        try:
            found = self._api("GET", f"/mlflow/logged-models/{quote(model_id, safe='')}")
        except _ServerRefused as exc:
            if exc.not_found:
                raise ModelNotFound(
                    f"No logged model {model_id!r} at {self.server}; check the id in models:/<id>, or "
                    "point --registry-uri (or MLFLOW_TRACKING_URI) at the server that logged it"
                ) from None
            raise ModelNotFound(f"Logged model {model_id!r} at {self.server}: {exc.message}") from None
        location = _dict(_dict(found.get("model")).get("info")).get("artifact_uri")
        check_text("artifact location from the registry", location)
        if not location:
            raise ModelNotFound(f"Logged model {model_id!r} at {self.server} has no artifact location")
        return location

    def run_artifact_location(self, run_id: str, path: str) -> list[str]:
        """Where `runs:/<run_id>/<path>` may live, as MLflow's client looks: under the run's
        artifacts, then (MLflow 3) the logged model of that name from that run."""
        try:
            found = self._api("GET", "/mlflow/runs/get", params={"run_id": run_id})
        except _ServerRefused as exc:
            if exc.not_found:
                raise ModelNotFound(
                    f"No run {run_id!r} at {self.server}; check the run id in runs:/<run_id>/<path>, or "
                    "point --registry-uri (or MLFLOW_TRACKING_URI) at the server that recorded it"
                ) from None
            raise ModelNotFound(f"Run {run_id!r} at {self.server}: {exc.message}") from None
        info = _dict(_dict(found.get("run")).get("info"))
        root = info.get("artifact_uri") or ""
        check_text("artifact location from the registry", root)
        root = root.rstrip("/")
        if not root:
            raise ModelNotFound(f"Run {run_id!r} at {self.server} has no artifact location")
        candidates = [f"{root}/{path}" if path else root]
        name, _, rest = path.partition("/")
        experiment = info.get("experiment_id")
        if name and experiment is not None:
            model = self._logged_model_of_run(run_id, str(experiment), name)
            if model:
                candidates.append(f"{model.rstrip('/')}/{rest}" if rest else model)
        return candidates

    def _logged_model_of_run(self, run_id: str, experiment_id: str, name: str) -> str | None:
        """The artifact location of the logged model `name` from this run, found as MLflow's
        RunsArtifactRepository finds it (a name filter, then the run compared client-side)."""
        if "'" in name:
            return None
        body: dict[str, Any] = {"experiment_ids": [experiment_id], "filter": f"name = '{name}'"}
        for _ in range(MAX_SEARCH_PAGES):
            try:
                page = self._api("POST", "/mlflow/logged-models/search", json=body)
            except _ServerRefused:
                return None  # an MLflow 2.x server: no logged models
            for model in _list_of(page.get("models")):
                info = _dict(_dict(model).get("info"))
                if info.get("source_run_id") == run_id and isinstance(info.get("artifact_uri"), str):
                    return info["artifact_uri"]
            token = page.get("next_page_token")
            if not token or not isinstance(token, str):
                return None
            body["page_token"] = token
        return None

    # Artifacts --------------------------------------------------------------------------------

    def download(self, location: str, destination: Path) -> bool:
        """The artifact directory at `location`, listed level by level and streamed to disk,
        within the listing depth, file count, byte and time limits."""
        endpoints = self._artifact_endpoints(location)
        if endpoints is None:
            return False
        listing_url, root = endpoints
        limits, listed, downloaded = self.limits, 0, 0
        pending = [("", 0)]
        while pending:
            relative, depth = pending.pop()
            remote = posixpath.join(root, relative) if relative else root
            entries = self._list(listing_url, remote, location)
            listed += len(entries)
            if listed > limits.max_files:
                raise self._limit(
                    f"The artifacts at {location} list more than {limits.max_files} files and directories", "MAX_FILES"
                )
            for entry in entries:
                name, is_dir, size = self._entry(entry, location)
                child = posixpath.join(relative, name) if relative else name
                if is_dir:
                    if depth + 1 > limits.max_listing_depth:
                        raise self._limit(f"The artifacts at {location} nest directories more than "
                                          f"{limits.max_listing_depth} deep (at {child[:200]!r})", "MAX_LISTING_DEPTH")
                    (destination / child).mkdir(parents=True, exist_ok=True)
                    pending.append((child, depth + 1))
                    continue
                what = f"{location.rstrip('/')}/{child}"
                if size is not None and downloaded + size > limits.max_bytes:
                    raise self._limit(f"The artifact {what} is listed at {size} bytes, past the {limits.max_bytes} "
                                      "bytes allowed for one model", "MAX_BYTES")
                target = destination / child
                target.parent.mkdir(parents=True, exist_ok=True)
                url = f"{listing_url}/{_quote_path(posixpath.join(remote, name))}"
                downloaded += self._fetch_file(url, target, size, what, limits.max_bytes - downloaded)
        return True

    def _artifact_endpoints(self, location: str) -> tuple[str, str] | None:
        """(listing URL, artifact path under the server's artifact root), mapped as MLflow's
        MlflowArtifactsRepository maps them; None when this server's proxy cannot serve it.
        A location at another origin is fetched there, without this server's credentials."""
        parsed = urlparse(location)
        if parsed.scheme == "mlflow-artifacts":
            netloc = parsed.netloc or self.netloc
            listing = urlunparse((self.scheme, netloc, f"{self.prefix}{API}{ARTIFACTS_ENDPOINT}", "", "", ""))
            return listing, _artifact_root(unquote(parsed.path), location)
        if parsed.scheme in ("http", "https") and ARTIFACTS_ENDPOINT in parsed.path:
            head, _, tail = parsed.path.partition(ARTIFACTS_ENDPOINT)
            listing = urlunparse((parsed.scheme, parsed.netloc, f"{head}{ARTIFACTS_ENDPOINT}", "", "", ""))
            return listing, _artifact_root(unquote(tail), location)
        return None

    def _list(self, listing_url: str, remote: str, location: str) -> list[Any]:
        response = self._send("GET", listing_url, params={"path": remote} if remote else None)
        if response.status_code != 200:
            raise self._failure(response, f"listing the artifacts of {location}")
        files = _json(response, self.server).get("files") or []
        if not isinstance(files, list):
            raise ModelNotFound(f"{self.server} answered a listing of {location} without a list of files")
        return files

    def _entry(self, entry: Any, location: str) -> tuple[str, bool, int | None]:
        """(name, is a directory, size if given) of one listed entry: a plain name, never a path."""
        if not isinstance(entry, dict):
            shown = printable(repr(entry))[:100]
            raise ModelNotFound(f"{self.server} listed {shown} under {location}, not a file entry")
        name = entry.get("path", "")
        if (not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", "..")
                or printable(name) != name):
            raise UnsafeRegistryValue(f"{self.server} listed an unsafe artifact name {name!r} under {location}")
        size = entry.get("file_size")
        size = int(size) if isinstance(size, (int, str)) and str(size).isascii() and str(size).isdigit() else None
        return name, entry.get("is_dir") is True, size

    def _fetch_file(self, url: str, target: Path, size: int | None, what: str, budget: int) -> int:
        """Stream one file to disk, retrying transient failures and short bodies; its size."""
        problem = ""
        client = self._client_for(url)
        for attempt in range(self.attempts):
            if attempt:
                self._sleep(BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                with client.stream("GET", url, timeout=self._timeout()) as response:
                    if _transient(response.status_code):
                        problem = f"HTTP {response.status_code}"
                        continue
                    if response.status_code != 200:
                        raise self._failure(self._buffered(response, what), f"downloading {what}")
                    written = 0
                    with open(target, "wb") as out:
                        for chunk in response.iter_bytes():  # as it arrives, so the deadline holds for a trickle
                            written += len(chunk)
                            if written > budget:
                                raise self._limit(f"Downloading {what} went past the {self.limits.max_bytes} bytes "
                                                  "allowed for one model", "MAX_BYTES")
                            if size is not None and written > size:
                                raise ModelNotFound(f"{self.server} sent more of {what} than the {size} bytes listed")
                            out.write(chunk)
                            self._check_deadline()
                if size is not None and written != size:
                    raise _Truncated(f"got {written} of {size} bytes")
                return written
            except httpx.RequestError as exc:
                problem = _reason(exc)
            except _Truncated as exc:
                problem = str(exc)
        raise ModelNotFound(
            f"Downloading {what} from {self.server} failed after {self.attempts} attempts ({problem}); "
            "check the server and the network, then try again"
        )

    # HTTP -------------------------------------------------------------------------------------

    def _api(self, method: str, endpoint: str, **kwargs: Any) -> dict[str, Any]:
        response = self._send(method, f"{self.base}{API}{endpoint}", **kwargs)
        if response.status_code != 200:
            raise self._failure(response, f"{method} {API}{endpoint}")
        return _json(response, self.server)

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """One request, retried on connection errors, timeouts, 429 and 5xx; never on other 4xx,
        nor on a certificate the client does not trust (retrying cannot change that). The answer
        is read whole, up to MAX_ANSWER_BYTES."""
        problem, attempts = "", 0
        client = self._client_for(url)
        while attempts < self.attempts:
            if attempts:
                self._sleep(BACKOFF_SECONDS * 2 ** (attempts - 1))
            attempts += 1
            try:
                request = client.build_request(method, url, timeout=self._timeout(), **kwargs)
                streamed = client.send(request, stream=True)
                try:
                    response = self._buffered(streamed, f"{method} {request.url.path}")
                finally:
                    streamed.close()
            except httpx.RequestError as exc:
                problem = _reason(exc)
                if _untrusted(exc):
                    raise ModelNotFound(
                        f"Cannot reach the MLflow tracking server at {self.server}: its TLS certificate is "
                        f"not trusted ({problem}); set MLFLOW_TRACKING_SERVER_CERT_PATH to the CA bundle "
                        "that signed it, or MLFLOW_TRACKING_INSECURE_TLS=true to skip verification"
                    ) from None
                continue
            except httpx.InvalidURL as exc:
                raise ModelNotFound(f"Cannot ask {self.server} for {url!r}: {exc}") from None
            if _transient(response.status_code) and attempts < self.attempts:
                continue
            return response
        self._check_deadline()  # a deadline cut short the last attempts: say so, not "cannot reach"
        raise ModelNotFound(
            f"Cannot reach the MLflow tracking server at {self.server} after {attempts} attempts "
            f"({problem}); check that it is running and that --registry-uri or MLFLOW_TRACKING_URI "
            "points at it"
        )

    def _buffered(self, streamed: httpx.Response, doing: str) -> httpx.Response:
        """A streamed answer read whole, as it arrives, within MAX_ANSWER_BYTES and the deadline."""
        chunks, size = [], 0
        for chunk in streamed.iter_bytes():
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise RegistryLimitExceeded(
                    f"{self.server} answered {doing} with more than {MAX_ANSWER_BYTES >> 20} MiB; "
                    "is it an MLflow tracking server?"
                )
            chunks.append(chunk)
            self._check_deadline()
        return httpx.Response(streamed.status_code, headers=streamed.headers, content=b"".join(chunks),
                              request=streamed.request)

    # Limits -----------------------------------------------------------------------------------

    def _timeout(self) -> httpx.Timeout:
        """The per-request timeout, cut to what is left of the deadline."""
        self._check_deadline()
        return httpx.Timeout(min(self.limits.timeout_seconds, self.deadline - time.monotonic()))

    def _sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, min(seconds, self.deadline - time.monotonic())))

    def _check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise self._limit(
                f"Resolving and downloading from {self.server} took longer than "
                f"{self.limits.deadline_seconds:g} s; the server or the network is too slow",
                "DEADLINE",
            )

    def _limit(self, what: str, variable: str) -> RegistryLimitExceeded:
        return RegistryLimitExceeded(f"{what} ({ENV_PREFIX}{variable} sets this limit)")

    def _failure(self, response: httpx.Response, doing: str) -> ModelNotFound:
        status = response.status_code
        if status in (401, 403) and _origin(str(response.request.url)) != self.origin:
            return ModelNotFound(
                f"The artifact host {_origin_text(response.request.url)} answered HTTP {status} (unauthorised) to "
                f"{doing}: sigserve sends the credentials for {self.server} to that server only, never to "
                "another host; serve the artifacts through the tracking server's proxy, or make them readable there"
            )
        if status in (401, 403):
            sent = "the credentials given were refused" if self.credentials else "no credentials were given"
            return ModelNotFound(
                f"The MLflow tracking server at {self.server} answered HTTP {status} (unauthorised) to "
                f"{doing}: {sent}; {AUTH_HINT} to an account that may read the registry"
            )
        code, detail = _error_of(response)
        said = f"HTTP {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
        if _transient(status):
            return ModelNotFound(
                f"The MLflow tracking server at {self.server} kept failing ({said}) to {doing} after "
                f"{self.attempts} attempts; check the server's logs, then try again"
            )
        if 300 <= status < 400:
            target = printable(response.headers.get("location", "?"))
            said += f" (redirected to {target}; use that address as the registry URI)"
        return _ServerRefused(status, code, detail, f"{self.server} answered {said} ({doing})")


def _credentials(tracking: TrackingSettings) -> httpx.Auth | None:
    """As MLflow: username/password (Basic) before a token (Bearer). TrackingSettings has
    registered both as secrets to mask."""
    if tracking.username and tracking.password:
        return httpx.BasicAuth(tracking.username, tracking.password)
    if tracking.token:
        return _Bearer(tracking.token)
    return None


class _Bearer(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


def _tls_verification(tracking: TrackingSettings) -> ssl.SSLContext | bool:
    """MLflow's TLS settings. Without them, httpx's default (certifi's bundle), which is also
    what requests (MLflow's client) uses unless REQUESTS_CA_BUNDLE names another."""
    insecure, server_cert, client_cert = tracking.insecure_tls, tracking.server_cert_path, tracking.client_cert_path
    if insecure and server_cert:
        raise ModelNotFound(
            "MLFLOW_TRACKING_INSECURE_TLS=true and MLFLOW_TRACKING_SERVER_CERT_PATH are both set; "
            "unset one of them (MLflow refuses this combination too)"
        )
    ca_variable = "MLFLOW_TRACKING_SERVER_CERT_PATH" if server_cert else "REQUESTS_CA_BUNDLE"
    ca_bundle = None if insecure else server_cert or tracking.ca_bundle
    if not client_cert:
        return False if insecure else (_context(ca_bundle, ca_variable) if ca_bundle else True)
    context = ssl.create_default_context() if insecure else _context(ca_bundle or certifi.where(), ca_variable)
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(client_cert)
    except (OSError, ssl.SSLError) as exc:
        raise ModelNotFound(
            f"Cannot use MLFLOW_TRACKING_CLIENT_CERT_PATH={client_cert!r} ({exc}); point it at a PEM file"
        ) from None
    return context


def _context(ca_bundle: str, variable: str) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=ca_bundle)
    except (OSError, ssl.SSLError) as exc:
        raise ModelNotFound(
            f"Cannot use {variable}={ca_bundle!r} ({exc}); point it at a PEM bundle of CA certificates"
        ) from None


def _number(version: dict[str, Any]) -> int:
    text = str(version.get("version", ""))
    return int(text) if text.isdigit() else -1


def _transient(status: int) -> bool:
    return status == 429 or status >= 500


def _untrusted(exc: Exception) -> bool:
    return isinstance(exc, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(exc)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    return f"{type(exc).__name__}: {text}"


def _json(response: httpx.Response, server: str) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise ModelNotFound(
            f"{server} answered {response.request.method} {response.request.url.path} with something "
            "other than a JSON object; is it an MLflow tracking server?"
        )
    return found


def _error_of(response: httpx.Response) -> tuple[str | None, str]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = body.get("error_code")
        message = printable(" ".join(str(body.get("message", "")).split())[:300])
        return (code if isinstance(code, str) else None), message
    return None, printable(" ".join(response.text.split())[:200])


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object from the server, or an empty one when it answered something else there."""
    return value if isinstance(value, dict) else {}


def _list_of(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _origin(url: str | httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: where credentials may go (userinfo and path do not count)."""
    parsed = httpx.URL(url)
    return parsed.scheme, parsed.host, parsed.port or DEFAULT_PORTS.get(parsed.scheme)


def _origin_text(url: httpx.URL) -> str:
    scheme, host, port = _origin(url)
    return f"{scheme}://{host}:{port}"


def _artifact_root(path: str, location: str) -> str:
    """The artifact path under the server's root: never climbing out of it."""
    root = path.strip("/")
    if any(part in (".", "..") for part in root.split("/")) or printable(root) != root:
        raise UnsafeRegistryValue(f"Refusing the artifact location {location!r}: its path has '.' or '..' parts")
    return root


def _quote_path(path: str) -> str:
    return quote(path, safe="/")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
