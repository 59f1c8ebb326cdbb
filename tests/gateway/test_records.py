"""Records survive the store's JSON round trip unchanged, and documents written by older versions still load."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.records import (
    ApiKey,
    AudioFormat,
    EnrolmentQuality,
    HistoryEntry,
    Session,
    User,
    VoiceProfile,
    from_document,
    to_document,
)

text = st.text(max_size=20)
finite = st.floats(allow_nan=False, allow_infinity=False)
scopes = st.lists(text, max_size=3).map(tuple)
records = st.one_of(
    st.builds(User, id=text, username=text, password_hash=text, scopes=scopes, created_at=finite),
    st.builds(ApiKey, id=text, user_id=text, name=text, scopes=scopes, secret_hash=text, created_at=finite),
    st.builds(Session, id=text, owner=text, state=st.sampled_from(["created", "active", "closed", "expired"]),
              source_language=text, target_language=text, voice_profile_id=st.none() | text,
              audio_format=st.builds(AudioFormat, encoding=text, sample_rate=st.integers(), channels=st.integers()),
              created_at=finite, updated_at=finite, expires_at=finite),
    st.builds(HistoryEntry, id=text, transcript=text, translation=text, source_language=text, target_language=text,
              created_at=finite, timings_ms=st.dictionaries(text, finite, max_size=3)),
    st.builds(VoiceProfile, id=text, owner=text, name=text, created_at=finite, speech_seconds=finite,
              total_seconds=finite, quality=st.builds(EnrolmentQuality, st.none() | finite, finite, finite),
              consent=st.booleans(), has_source_audio=st.booleans(), embedding_model=text,
              voice_pitch_hz=st.none() | finite),
)


@given(records)
def test_a_record_comes_back_from_its_stored_json_unchanged(record):
    stored = json.loads(json.dumps(to_document(record)))
    assert from_document(type(record), stored) == record


def test_a_profile_enrolled_before_voice_cloning_loads_without_a_pitch():
    old = {"id": "p_1", "owner": "u_1", "name": "Ada", "created_at": 1.0, "speech_seconds": 5.0,
           "total_seconds": 6.0, "quality": {"snr_db": None, "rms_dbfs": -20.0, "clipping_ratio": 0.0},
           "consent": True, "has_source_audio": False, "embedding_model": "voice_embedding",
           "retired_field": "ignored"}
    profile = from_document(VoiceProfile, old)
    assert profile.voice_pitch_hz is None and profile.quality.snr_db is None


def test_documents_written_before_the_records_were_typed_still_load():
    session = from_document(Session, {
        "id": "s_1", "owner": "u_1", "state": "active", "source_language": "es", "target_language": "en",
        "voice_profile_id": None, "audio_format": {"encoding": "pcm16", "sample_rate": 48000, "channels": 1},
        "created_at": 1.0, "updated_at": 2.0, "expires_at": 3.0})
    assert session.audio_format.sample_rate == 48000
    user = from_document(User, {"id": "u_1", "username": "ada", "password_hash": "h", "scopes": ["stream"],
                                "created_at": 1.0})
    assert user.scopes == ("stream",)
