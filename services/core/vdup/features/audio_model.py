"""Builds vdup's audio descriptor as an ONNX graph: log-mel windows in, per-second vectors out.

Why a hand-built graph and not a trained network: audio only *confirms* a borderline visual match,
so it needs a descriptor that is stable under re-encoding, volume change and added noise, and
that is cheap, deterministic and reproducible from code (no weights to ship). The graph is a
modulation-spectrum (2-D cepstrum) of the log-mel spectrogram:

    x [B, T] (mono, 16 kHz, [-1, 1])
    -> |STFT|^2, 25 ms Hann window, 10 ms hop         (Conv1d with a fixed DFT basis)
    -> 64 mel bands (125 Hz - 7.6 kHz), log(. + 1e-6)
    -> mean over 100 ms steps                           (AveragePool, kernel = stride = 10)
    -> windows of 1 s (10 steps) every 0.5 s; per window and band the mean over time is removed
       (a volume change or EQ tilt is a constant offset in log-mel, so it cancels), then a 2-D
       DCT keeps mel-cepstral coefficients 0..15 x time-modulation coefficients 1..8
       (one Conv with kernel 10, stride 5: centering and both DCTs are linear, so they fuse)
    -> L2-normalised 128-d vectors                     y [B, W, 128], W = floor((T/160 - 40)/50)

Window w covers [0.5 w, 0.5 w + 1.0) s. ``build_audio_model()`` returns the serialised model;
``model_repository/audio_embedding/build_model.py`` writes it for Triton, and the embedded mode
builds the same bytes in memory.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000
N_FFT = 400
HOP = 160
N_MELS = 64
STEP_FRAMES = 10  # STFT frames per 100 ms step
WINDOW_STEPS = 10  # steps per 1 s window
HOP_STEPS = 5  # steps between windows: 0.5 s
N_CEPS = 16
N_MOD = 8
DIM = N_CEPS * N_MOD
WINDOW_S = WINDOW_STEPS * STEP_FRAMES * HOP / SAMPLE_RATE
HOP_S = HOP_STEPS * STEP_FRAMES * HOP / SAMPLE_RATE
OPSET = 17


def _mel_filterbank(n_mels: int, n_fft: int, sr: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney-style triangular mel filters: float32 [n_mels, n_fft // 2 + 1]."""

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (np.asarray(m) / 2595.0) - 1.0)

    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fb = np.zeros((n_mels, len(freqs)), np.float64)
    for i in range(n_mels):
        lo, mid, hi = mel_pts[i], mel_pts[i + 1], mel_pts[i + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        fb[i] = np.maximum(0, np.minimum(up, down)) * (2.0 / (hi - lo))
    return fb.astype(np.float32)


def _dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II rows 0..n_out-1: float64 [n_out, n_in]."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    m = np.cos(np.pi * (n + 0.5) * k / n_in) * np.sqrt(2.0 / n_in)
    m[0] /= np.sqrt(2.0)
    return m


def _window_kernel() -> np.ndarray:
    """Fused centering + 2-D DCT: float32 [DIM, N_MELS, WINDOW_STEPS] for a Conv1d."""
    center = np.eye(WINDOW_STEPS) - 1.0 / WINDOW_STEPS
    time_dct = _dct_matrix(N_MOD + 1, WINDOW_STEPS)[1:] @ center  # [N_MOD, steps]
    mel_dct = _dct_matrix(N_CEPS, N_MELS)  # [N_CEPS, mels]
    kernel = np.einsum("cm,ts->ctms", mel_dct, time_dct).reshape(DIM, N_MELS, WINDOW_STEPS)
    return kernel.astype(np.float32)


def build_audio_model() -> bytes:
    """The serialised ONNX model. Input ``AUDIO`` float32 [B, T]; output ``EMBEDDING`` [B, W, 128]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_bins = N_FFT // 2 + 1
    t = np.arange(N_FFT)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * t / N_FFT)
    k = np.arange(n_bins)[:, None]
    phase = 2 * np.pi * k * t[None, :] / N_FFT
    basis = np.concatenate([np.cos(phase) * window, -np.sin(phase) * window], axis=0)
    stft_w = basis[:, None, :].astype(np.float32)  # [2F, 1, N_FFT]
    mel_t = _mel_filterbank(N_MELS, N_FFT, SAMPLE_RATE, 125.0, 7600.0).T.copy()  # [F, mels]

    inits = [
        numpy_helper.from_array(stft_w, "stft_basis"),
        numpy_helper.from_array(mel_t, "mel_fb"),
        numpy_helper.from_array(_window_kernel(), "window_dct"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([0, n_bins, 2 * n_bins], np.int64), "split_sizes"),
        numpy_helper.from_array(np.array([n_bins, n_bins], np.int64), "halves"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
        numpy_helper.from_array(np.array(1e-8, np.float32), "tiny"),
    ]
    nodes = [
        helper.make_node("Unsqueeze", ["AUDIO", "axis1"], ["x3"]),
        helper.make_node("Conv", ["x3", "stft_basis"], ["spec"], strides=[HOP]),
        helper.make_node("Split", ["spec", "halves"], ["re", "im"], axis=1),
        helper.make_node("Mul", ["re", "re"], ["re2"]),
        helper.make_node("Mul", ["im", "im"], ["im2"]),
        helper.make_node("Add", ["re2", "im2"], ["power"]),  # [B, F, frames]
        helper.make_node("Transpose", ["power"], ["power_t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["power_t", "mel_fb"], ["mel"]),  # [B, frames, mels]
        helper.make_node("Add", ["mel", "eps"], ["mel_eps"]),
        helper.make_node("Log", ["mel_eps"], ["logmel"]),
        helper.make_node("Transpose", ["logmel"], ["logmel_t"], perm=[0, 2, 1]),
        helper.make_node(
            "AveragePool",
            ["logmel_t"],
            ["steps"],
            kernel_shape=[STEP_FRAMES],
            strides=[STEP_FRAMES],
        ),  # [B, mels, steps]
        helper.make_node("Conv", ["steps", "window_dct"], ["desc"], strides=[HOP_STEPS]),
        helper.make_node("Transpose", ["desc"], ["desc_t"], perm=[0, 2, 1]),  # [B, W, DIM]
        helper.make_node("ReduceL2", ["desc_t"], ["norm"], axes=[2], keepdims=1),
        helper.make_node("Max", ["norm", "tiny"], ["norm_safe"]),
        helper.make_node("Div", ["desc_t", "norm_safe"], ["EMBEDDING"]),
    ]
    graph = helper.make_graph(
        nodes,
        "vdup_audio_embedding",
        [helper.make_tensor_value_info("AUDIO", TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info("EMBEDDING", TensorProto.FLOAT, ["batch", "windows", DIM])],
        initializer=[i for i in inits if i.name not in ("split_sizes",)],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="vdup"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def min_samples() -> int:
    """Fewest input samples that give one window (1 s plus the STFT's own length)."""
    return (WINDOW_STEPS * STEP_FRAMES - 1) * HOP + N_FFT
