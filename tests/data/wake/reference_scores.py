"""Writes reference_scores.json: openWakeWord's own per-step scores for the shared samples.

    python reference_scores.py MODELS_DIR > reference_scores.json

Needs `pip install openwakeword==0.4.0 onnxruntime==1.24.2` (the wheel the models in
MODELS_DIR/wakeword come from). Each clip is scored as `Model.predict_clip` does: 1 s of silence
before and after, 1280-sample steps. tests/wake.rs compares Jarvis's scores with these.
"""

import json
import sys
import wave

import numpy as np
from openwakeword.model import Model

models = sys.argv[1] + "/wakeword/"
out = {}
for clip in ["hey_jarvis_joe_16k.wav", "turn_on_kitchen_lights_joe_16k.wav"]:
    model = Model(
        wakeword_model_paths=[models + "hey_jarvis_v0.1.onnx"],
        melspec_onnx_model_path=models + "melspectrogram.onnx",
        embedding_onnx_model_path=models + "embedding_model.onnx",
    )
    with wave.open(models + "samples/" + clip) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (16000, 1, 2)
    scores = [float(p["hey_jarvis_v0.1"]) for p in model.predict_clip(models + "samples/" + clip)]
    out[clip] = [round(s, 6) for s in scores]
print(json.dumps(out, indent=1))
