//! A Piper voice cut in two at its decoder, so that a sentence's audio can be decoded in pieces.
//!
//! A Piper voice is a VITS model exported as one ONNX graph: a text encoder, a duration
//! predictor and a normalising flow turn phonemes into a latent of `[1, channels, frames]`, and a
//! HiFi-GAN decoder turns every latent frame into `hop` samples (256 for medium voices). The
//! decoder is about two thirds of the work, and it is convolutional: each output sample depends
//! only on a few latent frames around it. So the latent of a whole sentence can be computed
//! first (the sentence's prosody is decided there, on all of it) and then decoded piece by
//! piece, each piece with a few frames of context on either side; the first piece of audio is
//! ready long before the whole sentence is.
//!
//! [`split`] cuts the graph where the decoder begins: the *front* model has the voice's inputs
//! and the decoder's inputs as outputs, the *decoder* model has those as inputs and the voice's
//! output. Nodes, weights and everything else are copied unchanged, so front then decoder is the
//! same function as the whole model. PyTorch's exporter names the decoder's nodes `/dec/…`;
//! a model without them is not split (the caller runs it whole).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::onnx::protobuf::{self, Field, Writer};
use crate::onnx::schema::*;

/// Where PyTorch's exporter puts the VITS decoder's nodes.
const DECODER_SCOPE: &str = "/dec/";

/// A voice model cut before its decoder: what each part keeps of it. Borrows the model's bytes;
/// [`Split::write_front`] and [`Split::write_decoder`] write the parts out (ONNX Runtime keeps
/// less memory for a model it loads from a file than for one given in memory).
pub(crate) struct Split<'m> {
    model_fields: Vec<Field<'m>>,
    graph_fields: Vec<Field<'m>>,
    nodes: Vec<Node<'m>>,
    initializers: Vec<(&'m str, &'m [u8])>,
    inputs: Vec<&'m [u8]>,
    outputs: Vec<&'m [u8]>,
    cut_infos: Vec<Vec<u8>>,
    front_nodes: Vec<usize>,
    decoder_nodes: Vec<usize>,
    /// The latent, `[1, channels, frames]`: what is decoded piece by piece.
    pub(crate) latent: String,
    /// Other decoder inputs, passed on whole (a multi-speaker voice's speaker embedding).
    pub(crate) passed: Vec<String>,
}

impl std::fmt::Debug for Split<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("front_nodes", &self.front_nodes.len())
            .field("decoder_nodes", &self.decoder_nodes.len())
            .field("latent", &self.latent)
            .field("passed", &self.passed)
            .finish_non_exhaustive()
    }
}

impl Split<'_> {
    /// Writes the front model: the voice's inputs → the decoder's inputs.
    ///
    /// # Errors
    /// Write errors.
    pub(crate) fn write_front(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let cut: Vec<&[u8]> = self.cut_infos.iter().map(Vec::as_slice).collect();
        self.write(out, &self.front_nodes, &self.inputs, &cut)
    }

    /// Writes the decoder model: the decoder's inputs → the voice's output.
    ///
    /// # Errors
    /// Write errors.
    pub(crate) fn write_decoder(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let cut: Vec<&[u8]> = self.cut_infos.iter().map(Vec::as_slice).collect();
        self.write(out, &self.decoder_nodes, &cut, &self.outputs)
    }

    /// The model with its graph's nodes, weights, inputs and outputs replaced; every other
    /// field of the model and of the graph is copied as it was. Shape annotations
    /// (`value_info`) are left out: ONNX Runtime infers them again. Large fields are written
    /// straight from the original bytes.
    fn write(
        &self,
        out: &mut dyn std::io::Write,
        kept: &[usize],
        inputs: &[&[u8]],
        outputs: &[&[u8]],
    ) -> std::io::Result<()> {
        // The graph as a list of byte slices: small headers and the original fields.
        let mut parts: Vec<Cow<'_, [u8]>> = Vec::new();
        let mut other = Writer::new();
        for f in &self.graph_fields {
            if !matches!(
                f.number,
                GRAPH_NODE | GRAPH_INITIALIZER | GRAPH_INPUT | GRAPH_OUTPUT | GRAPH_VALUE_INFO
            ) {
                other.field(f);
            }
        }
        parts.push(Cow::Owned(other.finish()));
        let mut used: HashSet<&str> = HashSet::new();
        for &index in kept {
            let node = &self.nodes[index];
            parts.extend(field(GRAPH_NODE, node.bytes));
            used.extend(node.inputs.iter().copied());
        }
        for (name, bytes) in &self.initializers {
            if used.contains(name) {
                parts.extend(field(GRAPH_INITIALIZER, bytes));
            }
        }
        for input in inputs {
            parts.extend(field(GRAPH_INPUT, input));
        }
        for output in outputs {
            parts.extend(field(GRAPH_OUTPUT, output));
        }
        let graph_len: usize = parts.iter().map(|part| part.len()).sum();
        for f in &self.model_fields {
            if f.number == MODEL_GRAPH {
                let mut header = Writer::new();
                header.length_prefix(MODEL_GRAPH, graph_len);
                out.write_all(&header.finish())?;
                for part in &parts {
                    out.write_all(part)?;
                }
            } else {
                let mut copy = Writer::new();
                copy.field(f);
                out.write_all(&copy.finish())?;
            }
        }
        Ok(())
    }
}

struct Node<'a> {
    bytes: &'a [u8],
    name: &'a str,
    op: &'a str,
    inputs: Vec<&'a str>,
    outputs: Vec<&'a str>,
    has_subgraph: bool,
}

fn parse_node(bytes: &[u8]) -> Result<Node<'_>, String> {
    let fields = protobuf::parse(bytes)?;
    let mut has_subgraph = false;
    for attribute in protobuf::messages(&fields, NODE_ATTRIBUTE) {
        let attribute = protobuf::parse(attribute)?;
        has_subgraph |= attribute
            .iter()
            .any(|f| f.number == ATTR_GRAPH || f.number == ATTR_GRAPHS);
    }
    Ok(Node {
        bytes,
        name: protobuf::string(&fields, NODE_NAME).unwrap_or(""),
        op: protobuf::string(&fields, NODE_OP_TYPE).unwrap_or(""),
        inputs: protobuf::strings(&fields, NODE_INPUT).collect(),
        outputs: protobuf::strings(&fields, NODE_OUTPUT).collect(),
        has_subgraph,
    })
}

fn value_info_name(bytes: &[u8]) -> Option<&str> {
    protobuf::parse(bytes)
        .ok()
        .and_then(|fields| protobuf::string(&fields, VALUE_INFO_NAME))
}

/// Cuts a Piper voice before its decoder.
///
/// # Errors
/// A model that is not a VITS export with a `/dec/` decoder fed only by the rest of the graph
/// (the caller then runs the whole model).
pub(crate) fn split(model: &[u8]) -> Result<Split<'_>, String> {
    let (model_fields, graph) = model_and_graph(model)?;
    let nodes = protobuf::messages(&graph, GRAPH_NODE)
        .map(parse_node)
        .collect::<Result<Vec<_>, _>>()?;
    let mut initializers: Vec<(&str, &[u8])> = Vec::new();
    for bytes in protobuf::messages(&graph, GRAPH_INITIALIZER) {
        let fields = protobuf::parse(bytes)?;
        let name = protobuf::string(&fields, TENSOR_NAME).ok_or("unnamed initializer")?;
        initializers.push((name, bytes));
    }
    if protobuf::messages(&graph, GRAPH_SPARSE_INITIALIZER)
        .next()
        .is_some()
    {
        return Err("sparse initializers are not supported".into());
    }
    let constant: HashSet<&str> = initializers.iter().map(|(name, _)| *name).collect();
    let inputs: Vec<&[u8]> = protobuf::messages(&graph, GRAPH_INPUT)
        .filter(|bytes| value_info_name(bytes).is_some_and(|name| !constant.contains(name)))
        .collect();
    let input_names: HashSet<&str> = inputs.iter().filter_map(|b| value_info_name(b)).collect();
    let outputs: Vec<&[u8]> = protobuf::messages(&graph, GRAPH_OUTPUT).collect();
    let output_names: Vec<&str> = outputs.iter().filter_map(|b| value_info_name(b)).collect();
    let mut value_infos: HashMap<&str, &[u8]> = HashMap::new();
    for bytes in protobuf::messages(&graph, GRAPH_VALUE_INFO) {
        if let Some(name) = value_info_name(bytes) {
            value_infos.insert(name, bytes);
        }
    }
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (index, node) in nodes.iter().enumerate() {
        for output in &node.outputs {
            producer.insert(output, index);
        }
    }

    // The decoder's inputs: what its nodes read from computed tensors outside it. Constants
    // (`Constant` nodes) are not cut; the decoder model gets its own copy of them.
    let in_decoder = |node: &Node<'_>| node.name.starts_with(DECODER_SCOPE);
    let first = nodes
        .iter()
        .find(|node| in_decoder(node))
        .ok_or("no decoder nodes (/dec/…): not a Piper VITS export")?;
    let latent = *first
        .inputs
        .first()
        .ok_or("the decoder's first node has no input")?;
    let mut cut = vec![latent];
    for node in nodes.iter().filter(|node| in_decoder(node)) {
        for &input in &node.inputs {
            if input.is_empty() || constant.contains(input) || cut.contains(&input) {
                continue;
            }
            match producer.get(input).map(|&index| &nodes[index]) {
                Some(outside) if !in_decoder(outside) && outside.op != "Constant" => {
                    cut.push(input);
                }
                Some(_) => {}
                None if input_names.contains(input) => {
                    return Err(format!("the decoder reads the model input {input}"));
                }
                None => return Err(format!("nothing produces {input}")),
            }
        }
    }

    let stop: HashSet<&str> = cut.iter().copied().collect();
    let decoder_nodes = closure(&nodes, &producer, &output_names, &stop)?;
    for &index in &decoder_nodes {
        if let Some(input) = nodes[index]
            .inputs
            .iter()
            .find(|input| input_names.contains(*input))
        {
            return Err(format!(
                "the decoder part depends on the model input {input} (through {})",
                nodes[index].name
            ));
        }
    }
    let front_nodes = closure(&nodes, &producer, &cut, &HashSet::new())?;

    let cut_infos = cut
        .iter()
        .map(|name| tensor_info(name, value_infos.get(name).copied()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Split {
        model_fields,
        graph_fields: graph,
        nodes,
        initializers,
        inputs,
        outputs,
        cut_infos,
        front_nodes,
        decoder_nodes,
        latent: latent.to_owned(),
        passed: cut[1..].iter().map(|name| (*name).to_owned()).collect(),
    })
}

/// A length-delimited field as a header and the bytes themselves.
fn field(number: u32, bytes: &[u8]) -> [Cow<'_, [u8]>; 2] {
    let mut header = Writer::new();
    header.length_prefix(number, bytes.len());
    [Cow::Owned(header.finish()), Cow::Borrowed(bytes)]
}

/// The nodes needed to compute `wanted`, going back no further than `stop`, in graph order.
fn closure(
    nodes: &[Node<'_>],
    producer: &HashMap<&str, usize>,
    wanted: &[&str],
    stop: &HashSet<&str>,
) -> Result<Vec<usize>, String> {
    let mut needed = vec![false; nodes.len()];
    let mut stack: Vec<&str> = wanted.to_vec();
    while let Some(tensor) = stack.pop() {
        if stop.contains(tensor) {
            continue;
        }
        let Some(&index) = producer.get(tensor) else {
            continue; // a model input or a weight
        };
        if needed[index] {
            continue;
        }
        let node = &nodes[index];
        if node.has_subgraph {
            return Err(format!(
                "{} ({}) has a subgraph; such models are run whole",
                node.name, node.op
            ));
        }
        needed[index] = true;
        stack.extend(node.inputs.iter().filter(|input| !input.is_empty()));
    }
    Ok((0..nodes.len()).filter(|&index| needed[index]).collect())
}

/// The graph's own description of a tensor, or one that says "float tensor" (what a VITS
/// decoder takes).
fn tensor_info(name: &str, known: Option<&[u8]>) -> Result<Vec<u8>, String> {
    if let Some(bytes) = known {
        if elem_type(bytes) != Some(DATA_TYPE_FLOAT) {
            return Err(format!("the decoder input {name} is not a float tensor"));
        }
        return Ok(bytes.to_vec());
    }
    let mut tensor = Writer::new();
    tensor.int(TENSOR_TYPE_ELEM, DATA_TYPE_FLOAT);
    let mut kind = Writer::new();
    kind.bytes(TYPE_TENSOR, &tensor.finish());
    let mut info = Writer::new();
    info.string(VALUE_INFO_NAME, name)
        .bytes(VALUE_INFO_TYPE, &kind.finish());
    Ok(info.finish())
}

/// The element type of a tensor's `ValueInfoProto`.
fn elem_type(info: &[u8]) -> Option<i64> {
    let info = protobuf::parse(info).ok()?;
    let kind = protobuf::parse(protobuf::messages(&info, VALUE_INFO_TYPE).next()?).ok()?;
    let tensor = protobuf::parse(protobuf::messages(&kind, TYPE_TENSOR).next()?).ok()?;
    protobuf::int(&tensor, TENSOR_TYPE_ELEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
        let mut w = Writer::new();
        for input in inputs {
            w.string(NODE_INPUT, input);
        }
        for output in outputs {
            w.string(NODE_OUTPUT, output);
        }
        w.string(NODE_NAME, name).string(NODE_OP_TYPE, op);
        w.finish()
    }

    fn info(name: &str) -> Vec<u8> {
        tensor_info(name, None).unwrap()
    }

    fn model(nodes: &[Vec<u8>]) -> Vec<u8> {
        let mut weight = Writer::new();
        weight.string(TENSOR_NAME, "w");
        let mut graph = Writer::new();
        for n in nodes {
            graph.bytes(GRAPH_NODE, n);
        }
        graph
            .string(2, "vits")
            .bytes(GRAPH_INITIALIZER, &weight.finish())
            .bytes(GRAPH_INPUT, &info("input"))
            .bytes(GRAPH_OUTPUT, &info("output"));
        let mut m = Writer::new();
        m.varint(1, 8).bytes(MODEL_GRAPH, &graph.finish());
        m.finish()
    }

    fn names(model: &[u8], number: u32) -> Vec<String> {
        let fields = protobuf::parse(model).unwrap();
        let graph =
            protobuf::parse(protobuf::messages(&fields, MODEL_GRAPH).next().unwrap()).unwrap();
        protobuf::messages(&graph, number)
            .map(|bytes| {
                let f = protobuf::parse(bytes).unwrap();
                let field = if number == GRAPH_NODE { NODE_NAME } else { 1 };
                let field = if number == GRAPH_INITIALIZER {
                    TENSOR_NAME
                } else {
                    field
                };
                protobuf::string(&f, field).unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn the_graph_is_cut_where_the_decoder_begins() {
        let bytes = model(&[
            node("/enc/Conv", "Conv", &["input", "w"], &["h"]),
            node("/emb_g/Gather", "Gather", &["w", "input"], &["g"]),
            node("/Constant", "Constant", &[], &["axes"]),
            node("/Mul", "Mul", &["h", "h"], &["z"]),
            node("/dec/conv_pre/Conv", "Conv", &["z", "w"], &["d1"]),
            node("/dec/cond/Conv", "Conv", &["g", "w"], &["d2"]),
            node("/dec/Add", "Add", &["d1", "d2"], &["d3"]),
            node("/Unsqueeze", "Unsqueeze", &["d3", "axes"], &["output"]),
        ]);
        let split = split(&bytes).unwrap();
        let (mut front, mut decoder) = (Vec::new(), Vec::new());
        split.write_front(&mut front).unwrap();
        split.write_decoder(&mut decoder).unwrap();
        assert_eq!(split.latent, "z");
        assert_eq!(split.passed, ["g"]);
        assert_eq!(
            names(&front, GRAPH_NODE),
            ["/enc/Conv", "/emb_g/Gather", "/Mul"]
        );
        assert_eq!(names(&front, GRAPH_INPUT), ["input"]);
        assert_eq!(names(&front, GRAPH_OUTPUT), ["z", "g"]);
        assert_eq!(names(&front, GRAPH_INITIALIZER), ["w"]);
        assert_eq!(
            names(&decoder, GRAPH_NODE),
            [
                "/Constant",
                "/dec/conv_pre/Conv",
                "/dec/cond/Conv",
                "/dec/Add",
                "/Unsqueeze"
            ]
        );
        assert_eq!(names(&decoder, GRAPH_INPUT), ["z", "g"]);
        assert_eq!(names(&decoder, GRAPH_OUTPUT), ["output"]);
        // The graph's name and the model's other fields are kept.
        let fields = protobuf::parse(&decoder).unwrap();
        assert_eq!(protobuf::int(&fields, 1), Some(8));
    }

    #[test]
    fn models_that_cannot_be_cut_are_refused() {
        let no_decoder = model(&[node("/enc/Conv", "Conv", &["input", "w"], &["output"])]);
        assert!(split(&no_decoder).unwrap_err().contains("not a Piper VITS"));
        let reads_input = model(&[
            node("/enc/Conv", "Conv", &["input", "w"], &["z"]),
            node("/dec/Conv", "Conv", &["z", "input"], &["output"]),
        ]);
        assert!(split(&reads_input).unwrap_err().contains("model input"));
        let after_decoder = model(&[
            node("/enc/Conv", "Conv", &["input", "w"], &["z"]),
            node("/dec/Conv", "Conv", &["z", "w"], &["d"]),
            node("/Add", "Add", &["d", "input"], &["output"]),
        ]);
        assert!(split(&after_decoder).unwrap_err().contains("model input"));
        assert!(split(b"\xff\xff").is_err());
    }
}
