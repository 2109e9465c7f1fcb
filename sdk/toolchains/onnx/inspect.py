"""What an ``.onnx`` / ``.ort`` file says about itself (inputs, outputs, metadata), without running it.

onnx (for ``.onnx``) or onnxruntime (for ``.ort``) are imported on use; without them nothing is read."""
from __future__ import annotations

from pathlib import Path

from slsdk.bundle import BundleError

__all__ = ["model_signature"]

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16", 11: "float64"}
_ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8"}


def model_signature(path: Path) -> dict | None:
    """{"inputs"/"outputs": [(name, shape, dtype)], "meta": metadata_props} of an .onnx/.ort, without running it."""
    if path.suffix == ".onnx":
        try:
            import onnx  # heavy optional package
        except ImportError:
            onnx = None
        if onnx is not None:
            try:
                m = onnx.load(str(path), load_external_data=False)
            except Exception as e:  # noqa: BLE001 - protobuf raises DecodeError and friends
                raise BundleError(f"{path}: not a readable ONNX model ({type(e).__name__}: {_short(str(e), 200)})") \
                    from None

            def vi(v):
                t = v.type.tensor_type
                shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]
                return v.name, shape, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type))

            inits = {i.name for i in m.graph.initializer}
            return {"inputs": [vi(v) for v in m.graph.input if v.name not in inits],
                    "outputs": [vi(v) for v in m.graph.output],
                    "meta": {p.key: p.value for p in m.metadata_props}, "names": True}
    try:
        import onnxruntime as ort  # heavy optional package
    except ImportError:
        return None
    if hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise BundleError(f"{path}: onnxruntime cannot read the model ({_short(str(e).strip(), 200)})") from None

    def args(xs):
        return [(x.name, [d if isinstance(d, int) else (d or None) for d in x.shape], _ORT_DTYPES.get(x.type, x.type))
                for x in xs]

    return {"inputs": args(sess.get_inputs()), "outputs": args(sess.get_outputs()),
            "meta": dict(sess.get_modelmeta().custom_metadata_map), "names": True}


def _short(v, n: int = 60) -> str:
    """``repr(v)`` cut to ``n`` characters (messages never echo a huge value)."""
    r = repr(v)
    return r if len(r) <= n else r[:n] + "..."
