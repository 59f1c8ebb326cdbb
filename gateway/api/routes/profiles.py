"""Voice profiles: enrol from an upload, list, get, delete, compare with another clip."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Path, Response, UploadFile, status

from gateway.api.deps import Services, principal, require, services
from gateway.schemas import CompareResult, ProfileOut
from gateway.security import SCOPE_PROFILES_WRITE, Principal

router = APIRouter(prefix="/v1/profiles", tags=["voice profiles"])
ProfileId = Path(max_length=64, examples=["p_3b9e0d1c2a4f4e5d8c7b6a5f4e3d2c1b"])
AUDIO_HELP = "WAV, FLAC or OGG; any sample rate (resampled to 16 kHz); stereo is mixed to mono"


async def _read(upload: UploadFile, svc: Services) -> bytes:
    # One byte past the limit is enough to know it is too large, without reading a huge body.
    return await upload.read(svc.settings.max_upload_bytes + 1)


@router.post("", response_model=ProfileOut, status_code=status.HTTP_201_CREATED,
             summary="Enrol a voice profile from 3-60 s of speech")
async def enrol(
    file: UploadFile = File(description=AUDIO_HELP),
    name: str = Form(min_length=1, max_length=64, examples=["Ada at the office"]),
    consent: bool = Form(description="The speaker agreed to have their voice profiled", examples=[True]),
    who: Principal = Depends(require(SCOPE_PROFILES_WRITE)),
    svc: Services = Depends(services),
) -> ProfileOut:
    return ProfileOut.model_validate(await svc.profiles.enrol(who.subject, name, await _read(file, svc), consent))


@router.get("", response_model=list[ProfileOut], summary="List your voice profiles")
async def list_profiles(who: Principal = Depends(principal), svc: Services = Depends(services)) -> list[ProfileOut]:
    return [ProfileOut.model_validate(p) for p in await svc.profiles.list(who.subject)]


@router.get("/{profile_id}", response_model=ProfileOut, summary="Get one of your voice profiles")
async def get_profile(profile_id: str = ProfileId, who: Principal = Depends(principal),
                      svc: Services = Depends(services)) -> ProfileOut:
    return ProfileOut.model_validate(await svc.profiles.get(who.subject, profile_id))


@router.delete("/{profile_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a voice profile and its stored embedding and audio")
async def delete_profile(profile_id: str = ProfileId, who: Principal = Depends(require(SCOPE_PROFILES_WRITE)),
                         svc: Services = Depends(services)) -> Response:
    await svc.profiles.delete(who.subject, profile_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{profile_id}/compare", response_model=CompareResult,
             summary="Cosine similarity between the profile and the speaker of another clip")
async def compare(profile_id: str = ProfileId, file: UploadFile = File(description=AUDIO_HELP),
                  who: Principal = Depends(principal), svc: Services = Depends(services)) -> CompareResult:
    score, seconds = await svc.profiles.compare(who.subject, profile_id, await _read(file, svc))
    return CompareResult(profile_id=profile_id, score=score, speech_seconds=seconds)
