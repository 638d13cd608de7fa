//! The openWakeWord embedding model, rewritten to compute only what each new 80 ms step adds.
//!
//! openWakeWord runs Google's speech embedding model on the last 76 mel frames every 8 frames
//! (80 ms), so consecutive windows share 68 of their 76 frames, and about nine tenths of every
//! run repeats work done before. The model is a stack of convolutions that are "valid" along
//! time (no padding), pointwise activations, and max-pools whose time stride equals their time
//! kernel; its time strides multiply to 8. Such a network can run incrementally: given the 8 new
//! mel frames, each convolution with a time kernel of `k` needs only the last `k - 1` rows of its
//! input from the previous step, and produces exactly the rows the full window would have added.
//!
//! [`rewrite`] builds that incremental graph from the model file, as ONNX, for the same ONNX
//! Runtime: the input becomes the 8 new frames, and before every such convolution a `Concat`
//! prepends its cached rows (a new graph input) and a `Slice` keeps the last `k - 1` rows for next
//! time (a new graph output). Weights and every other node are copied unchanged. The result is
//! the same function as the full model, evaluated in pieces: the engine checks that numerically
//! when it loads, and falls back to the full model if the check fails (or if a model does not
//! have this shape at all).
//!
//! Design: the caches are plain graph inputs and outputs rather than ONNX Runtime state, so one
//! session serves every stream; each stream owns its cache rows (about 38 kB).

use std::collections::HashMap;

use crate::onnx::protobuf::{self, Field, Writer};
use crate::onnx::schema::*;

/// Pointwise operators: they keep the time axis as it is.
const POINTWISE: &[&str] = &[
    "Relu",
    "LeakyRelu",
    "BatchNormalization",
    "Max",
    "Min",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Sigmoid",
    "Tanh",
    "Clip",
    "Identity",
    "Elu",
    "Selu",
    "HardSigmoid",
];

/// One cached tensor of the incremental graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cache {
    /// Graph input: the rows kept from the previous step.
    pub(crate) input: String,
    /// Graph output: the rows to keep for the next step.
    pub(crate) output: String,
    /// `[1, channels, rows, bins]`.
    pub(crate) shape: [usize; 4],
}

impl Cache {
    /// Number of values.
    pub(crate) fn len(&self) -> usize {
        self.shape.iter().product()
    }
}

/// The incremental embedding graph and how to drive it.
#[derive(Debug, Clone)]
pub(crate) struct StreamingModel {
    /// The ONNX model, ready for a session.
    pub(crate) model: Vec<u8>,
    /// Mel bins per frame (32); the input is `[1, hop, bins, 1]`, then the caches.
    pub(crate) bins: usize,
    /// The caches, in the session's input (and output) order after the frames.
    pub(crate) caches: Vec<Cache>,
}

/// An initializer's shape and, for `int64` ones, values.
struct Constant {
    dims: Vec<i64>,
    ints: Option<Vec<i64>>,
}

struct Node<'a> {
    fields: Vec<Field<'a>>,
    op: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    attrs: HashMap<&'a str, Vec<Field<'a>>>,
}

impl Node<'_> {
    fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        self.attrs
            .get(name)
            .map(|fields| protobuf::ints(fields, ATTR_INTS))
            .transpose()
    }

    fn int(&self, name: &str) -> Option<i64> {
        self.attrs
            .get(name)
            .and_then(|fields| protobuf::int(fields, ATTR_I))
    }

    fn string(&self, name: &str) -> Option<&str> {
        self.attrs
            .get(name)
            .and_then(|fields| protobuf::string(fields, ATTR_S))
    }
}

/// The main activation as it flows through the graph: its full-model shape, and how many time
/// rows one incremental step carries at this point.
struct Track {
    dims: Vec<i64>,
    /// Index of the time axis in `dims`, while there is one.
    time_axis: Option<usize>,
    /// Time rows of the incremental step.
    step_rows: i64,
}

impl Track {
    fn time(&self, op: &str) -> Result<(usize, i64), String> {
        let axis = self
            .time_axis
            .ok_or_else(|| format!("{op} after the time axis was reshaped away"))?;
        let rows = *self.dims.get(axis).ok_or("time axis out of range")?;
        Ok((axis, rows))
    }
}

/// Builds the incremental graph of an embedding model whose time strides multiply to `hop`.
///
/// # Errors
/// A model that is not a time-valid convolution stack (the caller then runs the full model).
pub(crate) fn rewrite(model: &[u8], hop: usize) -> Result<StreamingModel, String> {
    let (model_fields, graph) = model_and_graph(model)?;

    let mut constants = HashMap::new();
    for bytes in protobuf::messages(&graph, GRAPH_INITIALIZER) {
        let fields = protobuf::parse(bytes)?;
        let name = protobuf::string(&fields, TENSOR_NAME).ok_or("unnamed initializer")?;
        let dims = protobuf::ints(&fields, TENSOR_DIMS)?;
        let ints = if protobuf::int(&fields, TENSOR_DATA_TYPE) == Some(DATA_TYPE_INT64) {
            Some(int64_values(&fields)?)
        } else {
            None
        };
        constants.insert(name, Constant { dims, ints });
    }

    let inputs: Vec<&[u8]> = protobuf::messages(&graph, GRAPH_INPUT)
        .filter(|bytes| {
            protobuf::parse(bytes)
                .ok()
                .and_then(|f| protobuf::string(&f, VALUE_INFO_NAME))
                .is_some_and(|name| !constants.contains_key(name))
        })
        .collect();
    let [input] = inputs[..] else {
        return Err(format!("expected one input, found {}", inputs.len()));
    };
    let input_fields = protobuf::parse(input)?;
    let input_name = protobuf::string(&input_fields, VALUE_INFO_NAME).ok_or("unnamed input")?;
    let input_dims = value_info_dims(&input_fields)?;
    let [_, window, bins, 1] = input_dims[..] else {
        return Err(format!(
            "input shape {input_dims:?} is not [batch, frames, bins, 1]"
        ));
    };
    let (window, bins) = (positive(window)?, positive(bins)?);
    let outputs: Vec<&[u8]> = protobuf::messages(&graph, GRAPH_OUTPUT).collect();
    let [output] = outputs[..] else {
        return Err(format!("expected one output, found {}", outputs.len()));
    };
    let output_name = protobuf::parse(output)
        .ok()
        .and_then(|f| protobuf::string(&f, VALUE_INFO_NAME).map(str::to_owned))
        .ok_or("unnamed output")?;

    let mut track = Track {
        dims: vec![1, window as i64, bins as i64, 1],
        time_axis: Some(1),
        step_rows: hop as i64,
    };
    let mut main = input_name.to_owned();
    let mut nodes = Writer::new();
    let mut extra_constants = Writer::new();
    let mut caches = Vec::new();
    let mut slice_starts = std::collections::BTreeSet::new();
    let mut time_axes = std::collections::BTreeSet::new();
    for bytes in protobuf::messages(&graph, GRAPH_NODE) {
        let node = parse_node(bytes)?;
        let Some(position) = node.inputs.iter().position(|i| *i == main) else {
            if node.inputs.iter().all(|i| constants.contains_key(i)) {
                nodes.bytes(GRAPH_NODE, bytes);
                continue;
            }
            return Err(format!("{} node off the main path", node.op));
        };
        let constant = |index: usize| -> Result<&Constant, String> {
            node.inputs
                .get(index)
                .and_then(|name| constants.get(name))
                .ok_or_else(|| format!("{} input {index} is not a constant", node.op))
        };
        let mut emitted = false;
        match node.op {
            "Pad" => {
                if node.string("mode").is_some_and(|m| m != "constant") {
                    return Err("only constant padding is supported".into());
                }
                let pads = match node.ints("pads")? {
                    Some(pads) => pads,
                    None => constant(1)?.ints.clone().ok_or("pads are not int64")?,
                };
                let rank = track.dims.len();
                let (axis, _) = track.time("Pad")?;
                if pads.len() != 2 * rank || pads[axis] != 0 || pads[rank + axis] != 0 {
                    return Err(format!("Pad {pads:?} pads the time axis"));
                }
                for (i, dim) in track.dims.iter_mut().enumerate() {
                    *dim += pads[i] + pads[rank + i];
                }
            }
            "Reshape" => {
                let shape = constant(1)?.ints.clone().ok_or("shape is not int64")?;
                let (_, rows) = track.time("Reshape")?;
                let axes: Vec<usize> = (0..shape.len()).filter(|&i| shape[i] == rows).collect();
                if rows == track.step_rows {
                    // Nothing changes length in time here (the final reshape).
                    track.time_axis = (axes.len() == 1).then(|| axes[0]);
                } else {
                    let [axis] = axes[..] else {
                        return Err(format!("cannot find the time axis in Reshape {shape:?}"));
                    };
                    let mut new_shape = shape.clone();
                    new_shape[axis] = track.step_rows;
                    let name = format!("{}__streaming", node.inputs[1]);
                    extra_constants.bytes(GRAPH_INITIALIZER, &int64_tensor(&name, &new_shape));
                    emit_with_input(&mut nodes, &node, 1, &name);
                    emitted = true;
                    track.time_axis = Some(axis);
                }
                track.dims = shape.iter().map(|&d| d.max(1)).collect();
            }
            "Conv" => {
                let (axis, rows) = track.time("Conv")?;
                if track.dims.len() != 4 || axis != 2 {
                    return Err("Conv on something other than [batch, channels, time, bins]".into());
                }
                let weight = &constant(1)?.dims;
                let [out_channels, _, kt, kf] = weight[..] else {
                    return Err(format!("Conv weight shape {weight:?}"));
                };
                let strides = node.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
                let dilations = node.ints("dilations")?.unwrap_or_else(|| vec![1, 1]);
                let pads = node.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
                if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
                    return Err("Conv with auto_pad".into());
                }
                if strides.len() != 2 || dilations.len() != 2 || pads.len() != 4 {
                    return Err("Conv attributes are not 2-D".into());
                }
                if strides[0] != 1 || dilations[0] != 1 || pads[0] != 0 || pads[2] != 0 {
                    return Err("Conv strides, dilates or pads along time".into());
                }
                if rows < kt {
                    return Err("Conv kernel longer than its input".into());
                }
                let bins_in = track.dims[3];
                let bins_out = (bins_in + pads[1] + pads[3] - dilations[1] * (kf - 1) - 1)
                    / strides[1].max(1)
                    + 1;
                if kt > 1 {
                    let index = caches.len();
                    let cache = Cache {
                        input: format!("stream_cache_in_{index}"),
                        output: format!("stream_cache_out_{index}"),
                        shape: [
                            1,
                            positive(track.dims[1])?,
                            positive(kt - 1)?,
                            positive(bins_in)?,
                        ],
                    };
                    let joined = format!("stream_joined_{index}");
                    let start = format!("stream_slice_start_{}", kt - 1);
                    let axes = format!("stream_slice_axes_{axis}");
                    slice_starts.insert(kt - 1);
                    time_axes.insert(axis);
                    let mut concat = Writer::new();
                    concat
                        .string(NODE_INPUT, &cache.input)
                        .string(NODE_INPUT, &main)
                        .string(NODE_OUTPUT, &joined)
                        .string(NODE_NAME, &format!("stream_concat_{index}"))
                        .string(NODE_OP_TYPE, "Concat")
                        .bytes(NODE_ATTRIBUTE, &int_attribute("axis", axis as i64));
                    nodes.bytes(GRAPH_NODE, &concat.finish());
                    let mut slice = Writer::new();
                    slice
                        .string(NODE_INPUT, &joined)
                        .string(NODE_INPUT, &start)
                        .string(NODE_INPUT, "stream_slice_end")
                        .string(NODE_INPUT, &axes)
                        .string(NODE_OUTPUT, &cache.output)
                        .string(NODE_NAME, &format!("stream_slice_{index}"))
                        .string(NODE_OP_TYPE, "Slice");
                    nodes.bytes(GRAPH_NODE, &slice.finish());
                    emit_with_input(&mut nodes, &node, position, &joined);
                    emitted = true;
                    caches.push(cache);
                }
                track.dims = vec![1, out_channels, rows - (kt - 1), bins_out];
            }
            "MaxPool" | "AveragePool" => {
                let (axis, rows) = track.time(node.op)?;
                if track.dims.len() != 4 || axis != 2 {
                    return Err(
                        "pooling on something other than [batch, channels, time, bins]".into(),
                    );
                }
                let kernel = node
                    .ints("kernel_shape")?
                    .ok_or("pool without kernel_shape")?;
                let strides = node.ints("strides")?.unwrap_or_else(|| vec![1, 1]);
                let pads = node.ints("pads")?.unwrap_or_else(|| vec![0; 4]);
                if kernel.len() != 2 || strides.len() != 2 || pads.len() != 4 {
                    return Err("pool attributes are not 2-D".into());
                }
                let (kt, st) = (kernel[0], strides[0]);
                if kt != st || pads[0] != 0 || pads[2] != 0 || node.int("ceil_mode") == Some(1) {
                    return Err("pool windows overlap or are padded along time".into());
                }
                if node.string("auto_pad").is_some_and(|p| p != "NOTSET") {
                    return Err("pool with auto_pad".into());
                }
                // Whole windows only: rows left over at the end would be the newest ones.
                if rows % st != 0 || track.step_rows % st != 0 {
                    return Err("pool windows do not line up with the step".into());
                }
                let bins_in = track.dims[3];
                let bins_out = (bins_in + pads[1] + pads[3] - kernel[1]) / strides[1].max(1) + 1;
                track.dims[2] = rows / st;
                track.dims[3] = bins_out;
                track.step_rows /= st;
            }
            op if POINTWISE.contains(&op) => {
                // Constants must not vary along time (they would not line up with the step).
                for (index, name) in node.inputs.iter().enumerate() {
                    if index == position || name.is_empty() || op == "BatchNormalization" {
                        continue;
                    }
                    let dims = &constant(index)?.dims;
                    let (axis, _) = track.time(op)?;
                    let offset = track.dims.len().saturating_sub(dims.len());
                    if axis >= offset && dims.get(axis - offset).is_some_and(|&d| d != 1) {
                        return Err(format!("{op} with a constant that varies along time"));
                    }
                }
            }
            other => return Err(format!("operator {other} is not supported")),
        }
        if !emitted {
            nodes.bytes(GRAPH_NODE, bytes);
        }
        main = (*node.outputs.first().ok_or("node without output")?).to_owned();
    }
    if main != output_name {
        return Err("the main path does not end at the output".into());
    }
    if track.step_rows != 1 || track.time_axis.is_some_and(|axis| track.dims[axis] != 1) {
        return Err(format!(
            "time strides do not multiply to {hop} (or the output has more than one row)"
        ));
    }
    if caches.is_empty() {
        return Err("no convolution along time".into());
    }
    for rows in &slice_starts {
        let name = format!("stream_slice_start_{rows}");
        extra_constants.bytes(GRAPH_INITIALIZER, &int64_tensor(&name, &[-rows]));
    }
    for axis in &time_axes {
        let name = format!("stream_slice_axes_{axis}");
        extra_constants.bytes(GRAPH_INITIALIZER, &int64_tensor(&name, &[*axis as i64]));
    }
    extra_constants.bytes(
        GRAPH_INITIALIZER,
        &int64_tensor("stream_slice_end", &[i64::MAX]),
    );

    let mut new_graph = Writer::new();
    for field in &graph {
        // Nodes and inputs are written anew; stale shapes (value_info) are dropped.
        if !matches!(field.number, GRAPH_NODE | GRAPH_INPUT | GRAPH_VALUE_INFO) {
            new_graph.field(field);
        }
    }
    let mut body = nodes.finish();
    body.extend(extra_constants.finish());
    // Graph inputs: the frames, then the caches; outputs: the embedding (copied), then the caches.
    let mut io = Writer::new();
    io.bytes(
        GRAPH_INPUT,
        &tensor_value_info(input_name, &[1, hop as i64, bins as i64, 1]),
    );
    for cache in &caches {
        let shape: Vec<i64> = cache.shape.iter().map(|&d| d as i64).collect();
        io.bytes(GRAPH_INPUT, &tensor_value_info(&cache.input, &shape));
    }
    for cache in &caches {
        let shape: Vec<i64> = cache.shape.iter().map(|&d| d as i64).collect();
        io.bytes(GRAPH_OUTPUT, &tensor_value_info(&cache.output, &shape));
    }
    let mut graph_out = new_graph.finish();
    graph_out.extend(body);
    graph_out.extend(io.finish());

    let mut out = Writer::new();
    for field in &model_fields {
        if field.number != MODEL_GRAPH {
            out.field(field);
        }
    }
    out.bytes(MODEL_GRAPH, &graph_out);
    Ok(StreamingModel {
        model: out.finish(),
        bins,
        caches,
    })
}

/// Shape of a model's first input, with symbolic dimensions as 0: `[batch, frames, bins, 1]`
/// for the embedding model, `[1, embeddings, dim]` for a classifier.
///
/// # Errors
/// A malformed model or input.
pub(crate) fn input_dims(model: &[u8]) -> Result<Vec<i64>, String> {
    io_dims(model, GRAPH_INPUT)
}

/// Shape of a model's first output, with symbolic dimensions as 0.
///
/// # Errors
/// A malformed model or output.
pub(crate) fn output_dims(model: &[u8]) -> Result<Vec<i64>, String> {
    io_dims(model, GRAPH_OUTPUT)
}

fn io_dims(model: &[u8], field: u32) -> Result<Vec<i64>, String> {
    let (_, graph) = model_and_graph(model)?;
    let info = protobuf::messages(&graph, field)
        .next()
        .ok_or("the model has no inputs or outputs")?;
    value_info_dims(&protobuf::parse(info)?)
}

fn parse_node(bytes: &[u8]) -> Result<Node<'_>, String> {
    let fields = protobuf::parse(bytes)?;
    let op = protobuf::string(&fields, NODE_OP_TYPE).ok_or("node without op_type")?;
    let inputs = protobuf::strings(&fields, NODE_INPUT).collect();
    let outputs = protobuf::strings(&fields, NODE_OUTPUT).collect();
    let mut attrs = HashMap::new();
    for attr in protobuf::messages(&fields, NODE_ATTRIBUTE) {
        let attr_fields = protobuf::parse(attr)?;
        if let Some(name) = protobuf::string(&attr_fields, ATTR_NAME) {
            attrs.insert(name, attr_fields);
        }
    }
    Ok(Node {
        fields,
        op,
        inputs,
        outputs,
        attrs,
    })
}

/// Writes `node` again with input `index` renamed.
fn emit_with_input(out: &mut Writer, node: &Node<'_>, index: usize, name: &str) {
    let mut seen = 0;
    let mut node_out = Writer::new();
    for field in &node.fields {
        if field.number == NODE_INPUT {
            if seen == index {
                node_out.string(NODE_INPUT, name);
            } else {
                node_out.field(field);
            }
            seen += 1;
        } else {
            node_out.field(field);
        }
    }
    out.bytes(GRAPH_NODE, &node_out.finish());
}

fn int64_values(fields: &[Field<'_>]) -> Result<Vec<i64>, String> {
    if let Some(raw) = protobuf::messages(fields, TENSOR_RAW_DATA).next() {
        if raw.len() % 8 != 0 {
            return Err("int64 raw_data of odd length".into());
        }
        return Ok(raw
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
            .collect());
    }
    protobuf::ints(fields, TENSOR_INT64_DATA)
}

fn value_info_dims(fields: &[Field<'_>]) -> Result<Vec<i64>, String> {
    let ty = protobuf::messages(fields, VALUE_INFO_TYPE)
        .next()
        .ok_or("input without a type")?;
    let ty = protobuf::parse(ty)?;
    let tensor = protobuf::messages(&ty, TYPE_TENSOR)
        .next()
        .ok_or("input is not a tensor")?;
    let tensor = protobuf::parse(tensor)?;
    if protobuf::int(&tensor, TENSOR_TYPE_ELEM) != Some(DATA_TYPE_FLOAT) {
        return Err("input is not float".into());
    }
    let shape = protobuf::messages(&tensor, TENSOR_TYPE_SHAPE)
        .next()
        .ok_or("input without a shape")?;
    let shape = protobuf::parse(shape)?;
    protobuf::messages(&shape, SHAPE_DIM)
        .map(|dim| Ok(protobuf::int(&protobuf::parse(dim)?, DIM_VALUE).unwrap_or(0)))
        .collect()
}

fn positive(value: i64) -> Result<usize, String> {
    usize::try_from(value)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("dimension {value} is not positive"))
}

fn int_attribute(name: &str, value: i64) -> Vec<u8> {
    let mut w = Writer::new();
    w.string(ATTR_NAME, name)
        .int(ATTR_I, value)
        .int(ATTR_TYPE, ATTR_TYPE_INT);
    w.finish()
}

fn int64_tensor(name: &str, values: &[i64]) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(TENSOR_DIMS, values.len() as i64)
        .int(TENSOR_DATA_TYPE, DATA_TYPE_INT64)
        .string(TENSOR_NAME, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.bytes(TENSOR_RAW_DATA, &raw);
    w.finish()
}

fn tensor_value_info(name: &str, dims: &[i64]) -> Vec<u8> {
    let mut shape = Writer::new();
    for &dim in dims {
        let mut d = Writer::new();
        d.int(DIM_VALUE, dim);
        shape.bytes(SHAPE_DIM, &d.finish());
    }
    let mut tensor = Writer::new();
    tensor
        .int(TENSOR_TYPE_ELEM, DATA_TYPE_FLOAT)
        .bytes(TENSOR_TYPE_SHAPE, &shape.finish());
    let mut ty = Writer::new();
    ty.bytes(TYPE_TENSOR, &tensor.finish());
    let mut info = Writer::new();
    info.string(VALUE_INFO_NAME, name)
        .bytes(VALUE_INFO_TYPE, &ty.finish());
    info.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny model: input [N, time, 5, 1] → Reshape [-1, 1, time, 5] → Conv 3x1 → MaxPool
    /// `pool`x1. The real model is checked against ONNX Runtime in tests/wake.rs.
    fn model(time: i64, pool: i64) -> Vec<u8> {
        let mut graph = Writer::new();
        let node = |op: &str, inputs: &[&str], output: &str, attrs: &[(&str, Vec<i64>)]| {
            let mut n = Writer::new();
            for i in inputs {
                n.string(NODE_INPUT, i);
            }
            n.string(NODE_OUTPUT, output).string(NODE_OP_TYPE, op);
            for (name, ints) in attrs {
                let mut a = Writer::new();
                a.string(ATTR_NAME, name);
                for v in ints {
                    a.int(ATTR_INTS, *v);
                }
                n.bytes(NODE_ATTRIBUTE, &a.finish());
            }
            n.finish()
        };
        graph.bytes(GRAPH_NODE, &node("Reshape", &["x", "shape"], "r", &[]));
        graph.bytes(GRAPH_NODE, &node("Conv", &["r", "w"], "c", &[]));
        graph.bytes(
            GRAPH_NODE,
            &node(
                "MaxPool",
                &["c"],
                "y",
                &[("kernel_shape", vec![pool, 1]), ("strides", vec![pool, 1])],
            ),
        );
        graph.bytes(GRAPH_INITIALIZER, &int64_tensor("shape", &[-1, 1, time, 5]));
        let mut w = Writer::new();
        w.int(TENSOR_DIMS, 2)
            .int(TENSOR_DIMS, 1)
            .int(TENSOR_DIMS, 3)
            .int(TENSOR_DIMS, 1)
            .int(TENSOR_DATA_TYPE, DATA_TYPE_FLOAT)
            .string(TENSOR_NAME, "w");
        graph.bytes(GRAPH_INITIALIZER, &w.finish());
        graph.bytes(GRAPH_INPUT, &tensor_value_info("x", &[0, time, 5, 1]));
        graph.bytes(GRAPH_OUTPUT, &tensor_value_info("y", &[0, 2, 1, 5]));
        let mut m = Writer::new();
        m.int(1, 7).bytes(MODEL_GRAPH, &graph.finish());
        m.finish()
    }

    #[test]
    fn a_time_valid_stack_gets_one_cache_per_time_convolution() {
        // 4 frames → conv 3x1 → 2 rows → pool 2 → 1 row: a step of 2 frames gives 1 row.
        let streaming = rewrite(&model(4, 2), 2).unwrap();
        assert_eq!(streaming.bins, 5);
        assert_eq!(streaming.caches.len(), 1);
        assert_eq!(streaming.caches[0].shape, [1, 1, 2, 5]);
        // The rewritten model parses, with Concat and Slice nodes and the new shape constant.
        let fields = protobuf::parse(&streaming.model).unwrap();
        let graph =
            protobuf::parse(protobuf::messages(&fields, MODEL_GRAPH).next().unwrap()).unwrap();
        let ops: Vec<&str> = protobuf::messages(&graph, GRAPH_NODE)
            .map(|n| parse_node(n).unwrap().op)
            .collect();
        assert_eq!(ops, ["Reshape", "Concat", "Slice", "Conv", "MaxPool"]);
        assert_eq!(protobuf::messages(&graph, GRAPH_INPUT).count(), 2);
        assert_eq!(protobuf::messages(&graph, GRAPH_OUTPUT).count(), 2);
        assert_eq!(input_dims(&streaming.model).unwrap(), vec![1, 2, 5, 1]);
    }

    #[test]
    fn models_that_cannot_stream_are_refused_with_a_reason() {
        // The step does not divide into the pool.
        assert!(rewrite(&model(4, 2), 3).unwrap_err().contains("line up"));
        // Strides multiply to 2, not 4.
        assert!(rewrite(&model(4, 2), 4).is_err());
        assert!(rewrite(b"not a model", 8).is_err());
        assert!(rewrite(&[], 8).unwrap_err().contains("no graph"));
    }
}
