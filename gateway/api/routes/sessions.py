"""Translation sessions: create, read, list (own only), close, history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Response, status

from gateway import records
from gateway.api.deps import Services, principal, require, services
from gateway.schemas import HistoryEntryOut, LanguagePair, Languages, SessionCreate, SessionOut
from gateway.security import SCOPE_STREAM, Principal

router = APIRouter(prefix="/v1/sessions", tags=["sessions"])
languages_router = APIRouter(prefix="/v1/languages", tags=["sessions"])
SessionId = Path(max_length=64, examples=["s_8c1d0f3e9b2a4c5d8e7f6a5b4c3d2e1f"])


@router.post("", response_model=SessionOut, status_code=status.HTTP_201_CREATED,
             summary="Create a translation session")
async def create_session(body: SessionCreate, who: Principal = Depends(require(SCOPE_STREAM)),
                         svc: Services = Depends(services)) -> SessionOut:
    svc.speech.pair(body.source_language, body.target_language)  # refused here, with the list, not mid-stream
    if body.voice_profile_id:
        await svc.profiles.get(who.subject, body.voice_profile_id)  # must exist and be the caller's
    session = await svc.sessions.create(who.subject, body.source_language, body.target_language,
                                        body.voice_profile_id, records.AudioFormat(**body.audio_format.model_dump()))
    return SessionOut.model_validate(session)


@languages_router.get("", response_model=Languages, summary="The language pairs sessions can use, and their engines")
async def list_languages(svc: Services = Depends(services)) -> Languages:
    return Languages(languages=list(svc.settings.languages), pairs=[
        LanguagePair(source=p.source, target=p.target, engine=p.engine, fallback=p.fallback) for p in svc.speech.pairs])


@router.get("", response_model=list[SessionOut], summary="List your sessions")
async def list_sessions(who: Principal = Depends(principal), svc: Services = Depends(services)) -> list[SessionOut]:
    return [SessionOut.model_validate(s) for s in await svc.sessions.list(who.subject)]


@router.get("/{session_id}", response_model=SessionOut, summary="Get one of your sessions")
async def get_session(session_id: str = SessionId, who: Principal = Depends(principal),
                      svc: Services = Depends(services)) -> SessionOut:
    return SessionOut.model_validate(await svc.sessions.get(who.subject, session_id))


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a session and its history")
async def delete_session(session_id: str = SessionId, who: Principal = Depends(principal),
                         svc: Services = Depends(services)) -> Response:
    await svc.sessions.delete(who.subject, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{session_id}/close", response_model=SessionOut, summary="Close a session")
async def close_session(session_id: str = SessionId, who: Principal = Depends(principal),
                        svc: Services = Depends(services)) -> SessionOut:
    return SessionOut.model_validate(await svc.sessions.close(who.subject, session_id))


@router.get("/{session_id}/history", response_model=list[HistoryEntryOut],
            summary="Transcript and translation of every utterance, oldest first")
async def session_history(session_id: str = SessionId, who: Principal = Depends(principal),
                          svc: Services = Depends(services)) -> list[HistoryEntryOut]:
    return [HistoryEntryOut.model_validate(e) for e in await svc.sessions.history(who.subject, session_id)]
