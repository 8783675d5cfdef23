"""Who is asking: bearer tokens, read as kube-apiserver's token authenticators read them.

Two kinds of token arrive in `Authorization: Bearer <token>`:

- the admin token (kube-apiserver's static `--token-auth-file`): user `vdpa-admin` in `system:masters`, which
  the server writes into the kubeconfig it hands out;
- ServiceAccount tokens, minted by the TokenRequest subresource (`kubectl create token`) or, for the pods the
  simulated kubelet runs, by `Authenticator.issue`. They are JWTs with the claims of kube's bound tokens (issuer,
  audiences, expiry, the account and its uid, the pod they are bound to) and authenticate as
  `system:serviceaccount:<ns>:<name>`. Kube signs them with an RSA/ECDSA key so that others can verify them;
  here only this server verifies, so HMAC-SHA256 under a key it keeps to itself does.

A ServiceAccount token stops working when it expires, or when its ServiceAccount (or the object it is bound to)
is deleted or made anew with another uid, as in kube. Anything else (no header, a malformed, unknown or expired
token) is 401 `Unauthorized`, as kube-apiserver answers with `--anonymous-auth=false`.

The admin token and the signing key come from `credentials.Credentials` (kept across restarts with a data
directory).
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vdpa_operator.sim.apiserver import errors
from vdpa_operator.sim.apiserver.credentials import Credentials
from vdpa_operator.sim.apiserver.errors import StatusError, bad_request
from vdpa_operator.sim.apiserver.store import Store

ISSUER = "https://kubernetes.default.svc.cluster.local"
"""kube-apiserver's --service-account-issuer in most clusters; also its default (and only) API audience here."""
ADMIN_USER = "vdpa-admin"
MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
SERVICE_ACCOUNTS = "system:serviceaccounts"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"

DEFAULT_EXPIRATION = 3600
"""TokenRequest's default lifetime (spec.expirationSeconds), one hour as in kube."""
MIN_EXPIRATION = 600
MAX_EXPIRATION = 1 << 32
VERIFIED_KEPT = 4096
NOT_BEFORE_LEEWAY = 60
"""Seconds of clock skew tolerated on `nbf`, as kube's JWT validator does."""

_BOUND_KINDS = {"Pod": "pods", "Secret": "secrets", "Node": "nodes"}
"""What a token may be bound to (TokenRequest spec.boundObjectRef.kind) and where that kind is stored."""


@dataclass(frozen=True)
class UserInfo:
    """An authenticated user, as kube's `user.Info`."""

    name: str
    groups: tuple[str, ...]
    uid: str = ""
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def service_account_user(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


ADMIN = UserInfo(ADMIN_USER, (MASTERS, AUTHENTICATED))


def unauthorized() -> StatusError:
    """Exactly kube-apiserver's 401 body: no detail about what was wrong with the credentials."""
    return StatusError(401, "Unauthorized", "Unauthorized")


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires: datetime.datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Authenticator:
    """Turns a request's Authorization header into a `UserInfo`, and mints ServiceAccount tokens."""

    def __init__(self, store: Store, credentials: Credentials) -> None:
        self.store = store
        self.credentials = credentials
        self._admin = credentials.admin_token.encode()
        self._key_id = _b64(hashlib.sha256(credentials.signing_key).digest()[:16])
        self._verified: dict[str, dict[str, Any]] = {}
        """Tokens whose signature and claims were checked (their expiry and account are checked every time)."""

    # --- authentication ---------------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> UserInfo:
        """The user a `Bearer` token names; 401 `StatusError` for anything else."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        if hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verified_claims(token)
            if claims is None:
                raise unauthorized()
            if len(self._verified) >= VERIFIED_KEPT:
                self._verified.clear()
            self._verified[token] = claims
        if claims["exp"] <= time.time():
            raise unauthorized()
        user = self._service_account_user(claims)
        if user is None:
            raise unauthorized()
        return user

    def _verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token this server signed that is valid now for this server's audience."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            header = json.loads(_unb64(parts[0]))
            signature = _unb64(parts[2])
            if not isinstance(header, dict) or header.get("alg") != "HS256":
                return None
            expected = hmac.digest(self.credentials.signing_key, f"{parts[0]}.{parts[1]}".encode(), "sha256")
            if not hmac.compare_digest(signature, expected):
                return None
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(claims, dict):
            return None
        now = time.time()
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        if (claims.get("iss") != ISSUER or not isinstance(audiences, list) or ISSUER not in audiences
                or not isinstance(claims.get("exp"), int) or claims["exp"] <= now
                or not isinstance(claims.get("nbf", 0), int) or claims.get("nbf", 0) > now + NOT_BEFORE_LEEWAY):
            return None
        return claims

    def _service_account_user(self, claims: Mapping[str, Any]) -> UserInfo | None:
        """The ServiceAccount the claims name, while it (and the object the token is bound to) still exist with
        the uids the token was made for."""
        kube = claims.get("kubernetes.io")
        if not isinstance(kube, dict) or not isinstance(kube.get("serviceaccount"), dict):
            return None
        namespace, account = str(kube.get("namespace", "")), kube["serviceaccount"]
        name, uid = str(account.get("name", "")), str(account.get("uid", ""))
        if claims.get("sub") != service_account_user(namespace, name) or self._uid("serviceaccounts", namespace,
                                                                                   name) != uid:
            return None
        extra: dict[str, tuple[str, ...]] = {}
        for kind, resource in _BOUND_KINDS.items():
            bound = kube.get(kind.lower())
            if bound is None:
                continue
            if not isinstance(bound, dict):
                return None
            scope = "" if resource == "nodes" else namespace
            if self._uid(resource, scope, str(bound.get("name", ""))) != bound.get("uid"):
                return None
            extra[f"authentication.kubernetes.io/{kind.lower()}-name"] = (str(bound["name"]),)
            extra[f"authentication.kubernetes.io/{kind.lower()}-uid"] = (str(bound["uid"]),)
        groups = (SERVICE_ACCOUNTS, f"{SERVICE_ACCOUNTS}:{namespace}", AUTHENTICATED)
        return UserInfo(service_account_user(namespace, name), groups, uid, extra)

    def _uid(self, resource: str, namespace: str, name: str) -> str | None:
        """The uid of a stored core/v1 object, None when there is none."""
        rtype = self.store.registry.lookup("", "v1", resource)
        if rtype is None or not name:
            return None
        try:
            return str(self.store.read(rtype, namespace, name)["metadata"].get("uid", ""))
        except StatusError:
            return None

    # --- minting ----------------------------------------------------------------------------------------------

    def issue(self, namespace: str, name: str, *, audiences: tuple[str, ...] = (ISSUER,),
              expiration_seconds: int = DEFAULT_EXPIRATION, bound: Mapping[str, str] | None = None) -> IssuedToken:
        """A token for ServiceAccount `namespace/name` (which must exist), bound to an object if given as
        {"kind": "Pod"|"Secret"|"Node", "name": ..., "uid": ...}: what the kubelet puts into a pod. Raises the
        `StatusError` the TokenRequest API answers with (404 for a missing account or object, 409 for a uid that
        does not match, 400 for a pod that runs as another account)."""
        sa_uid = self._uid("serviceaccounts", namespace, name)
        if sa_uid is None:
            raise errors.not_found("serviceaccounts", name)
        now = int(time.time())
        kube: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa_uid}}
        if bound is not None:
            kube[str(bound.get("kind", "")).lower()] = self._bound(namespace, name, bound)
        expires = now + expiration_seconds
        claims = {
            "aud": list(audiences), "exp": expires, "iat": now, "iss": ISSUER,
            "jti": str(uuid.uuid4()), "kubernetes.io": kube, "nbf": now, "sub": service_account_user(namespace, name),
        }
        header = _b64(json.dumps({"alg": "HS256", "kid": self._key_id}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.digest(self.credentials.signing_key, f"{header}.{payload}".encode(), "sha256")
        token = f"{header}.{payload}.{_b64(signature)}"
        return IssuedToken(token, datetime.datetime.fromtimestamp(expires, datetime.UTC))

    def _bound(self, namespace: str, account: str, ref: Mapping[str, str]) -> dict[str, str]:
        kind, name = ref.get("kind", ""), ref.get("name", "")
        resource = _BOUND_KINDS.get(kind)
        if resource is None:
            raise errors.invalid("TokenRequest", account, "spec.boundObjectRef.kind",
                                 f'Unsupported value: "{kind}": supported values: "Node", "Pod", "Secret"',
                                 group="authentication.k8s.io", reason="FieldValueNotSupported")
        rtype = self.store.registry.lookup("", "v1", resource)
        assert rtype is not None  # a built-in kind
        obj = self.store.read(rtype, "" if resource == "nodes" else namespace, name)  # 404 when missing
        uid = str(obj["metadata"].get("uid", ""))
        if ref.get("uid") and ref["uid"] != uid:
            raise StatusError(409, "Conflict", f"the UID in the bound object reference ({ref['uid']}) does not "
                              f"match the UID in record. The object might have been deleted and then recreated")
        if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName", "default") != account:
            raise bad_request(f'cannot bind token for serviceaccount "{namespace}/{account}" to pod running with '
                              f'different serviceaccount name.')
        return {"name": name, "uid": uid}

    def token_request(self, namespace: str, name: str, body: Any) -> dict[str, Any]:
        """POST serviceaccounts/<name>/token: the TokenRequest `body` answered with its status (the token)."""
        if not isinstance(body, dict):
            raise bad_request("the request body must be an authentication.k8s.io/v1 TokenRequest object")
        spec = body.get("spec") or {}
        if not isinstance(spec, dict):
            raise bad_request("spec: must be an object")
        expiration = spec.get("expirationSeconds", DEFAULT_EXPIRATION)
        if not isinstance(expiration, int) or isinstance(expiration, bool):
            raise bad_request(f"spec.expirationSeconds: must be a whole number of seconds, not {expiration!r}")
        if expiration < MIN_EXPIRATION or expiration > MAX_EXPIRATION:
            limit = "less than 10 minutes" if expiration < MIN_EXPIRATION else "larger than 2^32 seconds"
            raise errors.invalid("TokenRequest", name, "spec.expirationSeconds",
                                 f"Invalid value: {expiration}: may not specify a duration {limit}",
                                 group="authentication.k8s.io")
        audiences = tuple(spec.get("audiences") or (ISSUER,))
        if not all(isinstance(a, str) and a for a in audiences):
            raise bad_request("spec.audiences: must be a list of non-empty strings")
        bound = spec.get("boundObjectRef")
        if bound is not None and not isinstance(bound, dict):
            raise bad_request("spec.boundObjectRef: must be an object")
        issued = self.issue(namespace, name, audiences=audiences, expiration_seconds=expiration, bound=bound)
        out_spec: dict[str, Any] = {"audiences": list(audiences), "expirationSeconds": expiration}
        if bound is not None:
            out_spec["boundObjectRef"] = bound
        return {
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
            "spec": out_spec,
            "status": {"token": issued.token, "expirationTimestamp": _timestamp(issued.expires)},
        }
