"""Operator authentication: short-lived EdDSA JWTs on every call of the local API.

Only EdDSA is accepted (no `none`, no HMAC: algorithm confusion is impossible), and the
issuer, audience, expiry, issue time, subject and token id are all required. Tokens may
live at most `max_lifetime_s`. The verified claims are put in a context variable.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import jwt

from broker.errors import Unauthenticated

ALGORITHMS = ["EdDSA"]
REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
OPERATOR_ROLES = frozenset({"drafter", "approver", "contact_point_officer", "auditor", "admin"})


@dataclass(frozen=True)
class Operator:
    subject: str
    roles: frozenset[str]

    @property
    def actor(self) -> str:
        return f"person:{self.subject}"


current_operator: contextvars.ContextVar[Operator] = contextvars.ContextVar("operator")


class TokenVerifier:
    """Verifies operator tokens; a token that verified is remembered until it expires.

    A client sends the same token with every call for its lifetime, and the signature
    and claims of those exact bytes do not change: the cache, keyed by the token string,
    answers later calls until `exp` (with the same leeway PyJWT allows), so each token's
    signature is checked once. Any other string is verified in full; failures are never
    cached. The cache is bounded (`cache_size`).
    """

    def __init__(self, public_key: Any, *, issuer: str, audience: str,
                 max_lifetime_s: int = 900, leeway_s: int = 30, cache_size: int = 256,
                 clock: Callable[[], float] = time.time) -> None:
        self._key = public_key
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_s = max_lifetime_s
        self.leeway_s = leeway_s
        self._cache_size = cache_size
        self._clock = clock   # PyJWT reads time.time(): the cache must use the same clock
        self._verified: dict[str, tuple[Operator, int]] = {}   # token -> (operator, exp)

    def verify(self, token: str) -> Operator:
        hit = self._verified.get(token)
        if hit is not None:
            operator, exp = hit
            if exp > self._clock() - self.leeway_s:   # PyJWT's test: exp <= now - leeway
                return operator
            del self._verified[token]
        operator, exp = self._verify(token)
        self._remember(token, operator, exp)
        return operator

    def _remember(self, token: str, operator: Operator, exp: int) -> None:
        if len(self._verified) >= self._cache_size:
            oldest = self._clock() - self.leeway_s
            self._verified = {t: v for t, v in self._verified.items() if v[1] > oldest}
            while len(self._verified) >= self._cache_size:
                del self._verified[next(iter(self._verified))]
        self._verified[token] = (operator, exp)

    def _verify(self, token: str) -> tuple[Operator, int]:
        try:
            claims = jwt.decode(token, self._key, algorithms=ALGORITHMS, issuer=self.issuer,
                                audience=self.audience, leeway=self.leeway_s,
                                options={"require": REQUIRED})
        except jwt.PyJWTError as e:
            raise Unauthenticated(f"invalid operator token: {type(e).__name__}") from e
        if int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime_s:
            raise Unauthenticated("operator token lives too long")
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(
                isinstance(r, str) and r in OPERATOR_ROLES for r in roles):
            raise Unauthenticated("operator token has unknown roles")
        return Operator(subject=str(claims["sub"]), roles=frozenset(roles)), int(claims["exp"])


def mint_token(private_key: Any, *, issuer: str, audience: str, subject: str,
               roles: list[str], now_s: int, lifetime_s: int, token_id: str) -> str:
    """A token for the CLI (development issuer key created by `federation init`)."""
    return jwt.encode({"iss": issuer, "aud": audience, "sub": subject, "roles": roles,
                       "iat": now_s, "nbf": now_s, "exp": now_s + lifetime_s, "jti": token_id},
                      private_key, algorithm="EdDSA")


class OperatorAuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Rejects any call without a valid bearer token; exposes the operator to servicers."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        token = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                token = value[len("Bearer "):]
        try:
            operator = self.verifier.verify(token)
        except Unauthenticated as e:
            return _deny(handler, e.message)
        return _with_operator(handler, operator)


def _with_operator(handler: grpc.RpcMethodHandler,
                   operator: Operator) -> grpc.RpcMethodHandler:
    """The same handler, run with `current_operator` set for its duration."""
    if handler.response_streaming:
        inner_stream = handler.stream_stream or handler.unary_stream

        async def stream_behavior(request: Any, context: Any) -> Any:
            current_operator.set(operator)
            async for item in inner_stream(request, context):
                yield item

        if handler.request_streaming:
            return grpc.stream_stream_rpc_method_handler(
                stream_behavior, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)
        return grpc.unary_stream_rpc_method_handler(
            stream_behavior, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)
    inner = handler.stream_unary or handler.unary_unary

    async def behavior(request: Any, context: Any) -> Any:
        current_operator.set(operator)
        return await inner(request, context)

    factory = (grpc.stream_unary_rpc_method_handler if handler.request_streaming
               else grpc.unary_unary_rpc_method_handler)
    return factory(behavior, request_deserializer=handler.request_deserializer,
                   response_serializer=handler.response_serializer)


def _deny(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            abort, request_deserializer=handler.request_deserializer)
    return grpc.unary_unary_rpc_method_handler(
        abort, request_deserializer=handler.request_deserializer)
