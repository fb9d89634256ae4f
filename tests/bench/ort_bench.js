// ort_bench.js MODEL.onnx INPUT.nchw THREADS RUNS
//
// ONNX Runtime side of tests/bench/compare: runs an ONNX model of a
// catdog network (one input, NCHW float32, batch 1, square RGB: the side
// comes from INPUT's size) on the CPU execution
// provider with THREADS intra-op threads, and prints one JSON object:
// batch-1 times in ms (min and median over RUNS runs after warm-up), the
// logit, and the runtime's version.  Finds onnxruntime-node in
// $ORT_NODE_MODULES or .cache/onnxruntime-node (tools/install-onnxruntime).
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [model, inputPath, threadsArg, runsArg] = process.argv.slice(2);
  if (!runsArg) {
    console.error("usage: node ort_bench.js MODEL.onnx INPUT.nchw THREADS RUNS");
    process.exit(2);
  }
  const modules = process.env.ORT_NODE_MODULES ||
    path.join(__dirname, "..", "..", ".cache", "onnxruntime-node", "node_modules");
  const ort = require(path.join(modules, "onnxruntime-node"));
  const version = require(path.join(modules, "onnxruntime-node", "package.json")).version;
  const threads = parseInt(threadsArg, 10), runs = parseInt(runsArg, 10);
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    executionMode: "sequential",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
  });
  const buf = fs.readFileSync(inputPath);
  const data = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  const side = Math.round(Math.sqrt(data.length / 3));
  if (side < 1 || 3 * side * side !== data.length) {
    console.error(`ort_bench: ${inputPath} holds ${data.length} floats, not a square RGB image`);
    process.exit(2);
  }
  const dims = [1, 3, side, side];
  const name = session.inputNames[0];
  const feeds = { [name]: new ort.Tensor("float32", Float32Array.from(data), dims) };
  let out;
  for (let i = 0; i < 20; i++) out = await session.run(feeds);
  const times = [];
  for (let i = 0; i < runs; i++) {
    const t = process.hrtime.bigint();
    out = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  const logit = out[session.outputNames[0]].data[0];
  console.log(JSON.stringify({ min_ms: times[0], median_ms: median, logit, version }));
}

main().catch((e) => {
  console.error("ort_bench: " + (e && e.message ? e.message : e));
  process.exit(1);
});
