#!/usr/bin/env node
// Runs web/sdk/edge.js over golden fixtures written by tests/unit/test_edge_parity.py and writes what the
// JavaScript computed, for Python to compare:  node tests/unit/edge_parity.mjs FIXTURE.json OUT.json
// (the run itself: edge_parity_core.mjs; onnxruntime-web on its wasm backend in node, from web/node_modules).
import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as edge from '../../web/sdk/edge.js';
import { runParity } from './edge_parity_core.mjs';

const WEB = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'web');
const ort = await import(createRequire(join(WEB, 'package.json')).resolve('onnxruntime-web'));
ort.env.wasm.numThreads = 1;

const [fixturePath, outPath] = process.argv.slice(2);
const out = await runParity(JSON.parse(readFileSync(fixturePath, 'utf8')), edge, ort);
writeFileSync(outPath, JSON.stringify(out));
