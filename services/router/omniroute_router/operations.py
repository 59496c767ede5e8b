"""Non-chat requests (embeddings, images, transcription, provider-side token counts) through the
same routing as chat: key and policy checks, model resolution (aliases, combos, prefixes), the
key's limits, account selection, fallback and usage — without chat-only steps (request shaping,
the response cache)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omniroute import telemetry
from omniroute.bus.publisher import EventPublisher
from omniroute.catalog import provider_type
from omniroute.config.watcher import SnapshotHolder
from omniroute.settings import Settings
from omniroute.v1 import common_pb2, router_pb2
from omniroute_router import admission, policy
from omniroute_router.accounts import Accounts
from omniroute_router.dispatch import Dispatch, dispatch
from omniroute_router.errors import RoutingError
from omniroute_router.executors import ExecutorPool
from omniroute_router.plan import plan
from omniroute_router.resolve import Node, targets
from omniroute_router.shared import Shared
from omniroute_router.usage import RequestRecord

# Operation → (catalog capability, usage subject suffix). Token counts are free: no usage row.
CAPABILITY: dict[int, tuple[str, str]] = {common_pb2.OPERATION_EMBEDDINGS: ("embeddings", "embeddings"),
              common_pb2.OPERATION_IMAGES: ("images", "images"),
              common_pb2.OPERATION_TRANSCRIPTION: ("audio", "transcription"),
              common_pb2.OPERATION_COUNT_TOKENS: ("chat", "")}
# Provider-side token counts: the caller's body goes upstream as it is, so only the family that
# speaks the caller's format can count it (an Anthropic body is no Gemini countTokens request).
COUNTING_FAMILY: dict[int, str] = {common_pb2.ANTHROPIC: "anthropic", common_pb2.GEMINI: "gemini"}


def check_capability(node: Node, operation: int, client_format: int = common_pb2.ANTHROPIC) -> None:
    """A direct `provider/model` whose provider type cannot do this → 400 that says so. Combos
    keep only their capable steps (a combo may mix kinds)."""
    capability = CAPABILITY[operation][0]
    capable = [t for t in targets(node)
               if _serves(t.provider.type, t.provider.family, operation, client_format)]
    if operation == common_pb2.OPERATION_COUNT_TOKENS and not capable:
        # Only Anthropic and Gemini count on the provider's side; the edge counts the others itself.
        raise RoutingError(400, "The model's provider has no token-count API.", code="count_locally")
    if not capable:
        names = ", ".join(sorted({t.provider.id for t in targets(node)}))
        raise RoutingError(400, f"The provider {names} does not serve {capability} "
                                f"(model {targets(node)[0].name!r}).", code="unsupported_operation")


def _serves(type_name: str, family: str, operation: int, client_format: int = common_pb2.ANTHROPIC) -> bool:
    if operation == common_pb2.OPERATION_COUNT_TOKENS:
        return family == COUNTING_FAMILY.get(client_format)
    kind = provider_type(type_name)
    return kind is None or kind.can(CAPABILITY[operation][0])


class OperationFlow:
    def __init__(self, settings: Settings, config: SnapshotHolder, executors: ExecutorPool,
                 shared: Shared, publisher: EventPublisher) -> None:
        self._settings = settings
        self._config = config
        self._executors = executors
        self._shared = shared
        self._publisher = publisher
        self._accounts = Accounts(shared.redis, settings.env, shared.breakers, shared.cooldowns)

    async def answer(self, request: router_pb2.ChatRequest) -> AsyncIterator[common_pb2.AnswerEvent]:
        if request.operation not in CAPABILITY:
            yield common_pb2.AnswerEvent(error=RoutingError(
                400, f"The operation {request.operation} is not served by the router.",
                code="unsupported_operation").to_proto())
            return
        record = RequestRecord(request_id=request.request_id, key_id=request.key_id,
                               requested_model=request.model, client_format=request.client_format,
                               stream=False)
        try:
            async for event in self._answer(request, record):
                kind = event.WhichOneof("kind")
                if kind == "usage":
                    record.usage = event.usage
                    continue
                if kind == "response":
                    record.mark_first_chunk()
                elif kind == "error":
                    record.status, record.error_class = event.error.status, event.error.code
                yield event
        except BaseException as exc:
            if record.status < 400:
                record.status, record.error_class = 499, type(exc).__name__
            raise
        finally:
            subject = CAPABILITY[request.operation][1]
            if subject:
                self._publisher.publish(self._settings.subject(f"usage.{subject}"),
                                        record.to_event().SerializeToString(),
                                        msg_id=record.request_id, headers=telemetry.nats_headers())

    async def _answer(self, request: router_pb2.ChatRequest,
                      record: RequestRecord) -> AsyncIterator[common_pb2.AnswerEvent]:
        snapshot = self._config.current
        try:
            key, policies, requested, node = policy.admit(snapshot, request.key_id, request.model)
            check_capability(node, request.operation, request.client_format)
        except RoutingError as exc:
            yield common_pb2.AnswerEvent(error=exc.to_proto())
            return
        headers: dict[str, str] = {}
        try:
            async with admission.admitted(self._shared.limiter, snapshot, key,
                                          request.request_id) as admitted:
                if admitted is not None:
                    headers.update(admitted.headers())
                ctx = Dispatch(pool=self._executors, shared=self._shared, accounts=self._accounts,
                               snapshot=snapshot, key=key, policies=policies,
                               default_timeout_s=self._settings.upstream_timeout_s,
                               start_headers=headers)
                steps = await plan(snapshot, node, self._shared.combos, self._accounts, requested)
                steps = [s for s in steps
                         if _serves(s.target.provider.type, s.target.provider.family, request.operation,
                                    request.client_format)]
                async for event in dispatch(ctx, request, steps, record):
                    yield event
        except RoutingError as exc:
            yield common_pb2.AnswerEvent(error=exc.to_proto())
