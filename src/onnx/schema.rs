//! Field numbers of the ONNX protobuf messages (`onnx/onnx.proto`) that Jarvis reads and writes,
//! and the values it compares them with.

use super::protobuf::{self, Field};

/// The fields of a `ModelProto` and of its `GraphProto`.
pub(crate) type ModelAndGraph<'m> = (Vec<Field<'m>>, Vec<Field<'m>>);

/// Parses a model and its graph (the two levels every rewrite reads).
///
/// # Errors
/// Malformed protobuf, or a model without a graph.
pub(crate) fn model_and_graph(model: &[u8]) -> Result<ModelAndGraph<'_>, String> {
    let model_fields = protobuf::parse(model)?;
    let graph_bytes = protobuf::messages(&model_fields, MODEL_GRAPH)
        .next()
        .ok_or("the model has no graph")?;
    let graph = protobuf::parse(graph_bytes)?;
    Ok((model_fields, graph))
}

pub(crate) const MODEL_GRAPH: u32 = 7;
pub(crate) const GRAPH_NODE: u32 = 1;
pub(crate) const GRAPH_INITIALIZER: u32 = 5;
pub(crate) const GRAPH_INPUT: u32 = 11;
pub(crate) const GRAPH_OUTPUT: u32 = 12;
pub(crate) const GRAPH_VALUE_INFO: u32 = 13;
pub(crate) const GRAPH_SPARSE_INITIALIZER: u32 = 15;
pub(crate) const NODE_INPUT: u32 = 1;
pub(crate) const NODE_OUTPUT: u32 = 2;
pub(crate) const NODE_NAME: u32 = 3;
pub(crate) const NODE_OP_TYPE: u32 = 4;
pub(crate) const NODE_ATTRIBUTE: u32 = 5;
pub(crate) const ATTR_NAME: u32 = 1;
pub(crate) const ATTR_I: u32 = 3;
pub(crate) const ATTR_S: u32 = 4;
pub(crate) const ATTR_GRAPH: u32 = 6;
pub(crate) const ATTR_INTS: u32 = 8;
pub(crate) const ATTR_GRAPHS: u32 = 11;
pub(crate) const ATTR_TYPE: u32 = 20;
pub(crate) const ATTR_TYPE_INT: i64 = 2;
pub(crate) const TENSOR_DIMS: u32 = 1;
pub(crate) const TENSOR_DATA_TYPE: u32 = 2;
pub(crate) const TENSOR_INT64_DATA: u32 = 7;
pub(crate) const TENSOR_NAME: u32 = 8;
pub(crate) const TENSOR_RAW_DATA: u32 = 9;
pub(crate) const DATA_TYPE_FLOAT: i64 = 1;
pub(crate) const DATA_TYPE_INT64: i64 = 7;
pub(crate) const VALUE_INFO_NAME: u32 = 1;
pub(crate) const VALUE_INFO_TYPE: u32 = 2;
pub(crate) const TYPE_TENSOR: u32 = 1;
pub(crate) const TENSOR_TYPE_ELEM: u32 = 1;
pub(crate) const TENSOR_TYPE_SHAPE: u32 = 2;
pub(crate) const SHAPE_DIM: u32 = 1;
pub(crate) const DIM_VALUE: u32 = 1;
