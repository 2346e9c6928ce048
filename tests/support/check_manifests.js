// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Checks the Kubernetes manifests in deploy/kubernetes: each object against
// the Kubernetes JSON schemas (npm package kubernetes-models), and the
// tdsbpf container in each as the README promises it: not privileged, all
// capabilities dropped but BPF, PERFMON and NET_ADMIN (the systemd unit's
// three), the metrics port declared and served (--metrics-addr :PORT).
//
//   NODE_PATH=<prefix>/node_modules node check_manifests.js FILE...
'use strict';
const fs = require('fs');
const YAML = require('yaml');
const apps = require('kubernetes-models/apps/v1');

let failures = 0;
const fail = (file, what) => {
	console.log(`${file}: ${what}`);
	failures++;
};

function checkTracer(file, c) {
	const sc = c.securityContext || {};
	const caps = sc.capabilities || {};
	if (sc.privileged !== false)
		fail(file, 'the tdsbpf container must say privileged: false');
	if (sc.allowPrivilegeEscalation !== false)
		fail(file, 'the tdsbpf container must say allowPrivilegeEscalation: false');
	if (JSON.stringify(caps.drop) !== JSON.stringify(['ALL']))
		fail(file, `capabilities.drop must be [ALL], not ${JSON.stringify(caps.drop)}`);
	const add = (caps.add || []).slice().sort();
	if (JSON.stringify(add) !== JSON.stringify(['BPF', 'NET_ADMIN', 'PERFMON']))
		fail(file, `capabilities.add must be BPF, PERFMON, NET_ADMIN, not ${JSON.stringify(caps.add)}`);
	const args = c.args || [];
	const i = args.indexOf('--metrics-addr');
	if (i < 0)
		return fail(file, 'the tdsbpf container has no --metrics-addr');
	const port = Number(args[i + 1].split(':').pop());
	const declared = (c.ports || []).find((p) => p.name === 'metrics');
	if (!declared || declared.containerPort !== port)
		fail(file, `the metrics port ${port} is not declared as the container's port "metrics"`);
	if (!args.includes('--iface'))
		fail(file, 'the tdsbpf container names no --iface');
}

for (const file of process.argv.slice(2)) {
	const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
	for (const doc of docs) {
		if (doc.errors.length) {
			fail(file, doc.errors.map((e) => e.message).join('; '));
			continue;
		}
		const obj = doc.toJS();
		const Kind = apps[obj.kind];
		if (!Kind) {
			fail(file, `no schema here for ${obj.apiVersion} ${obj.kind}`);
			continue;
		}
		try {
			new Kind(obj).validate();
		} catch (e) {
			fail(file, `${obj.kind} ${obj.metadata && obj.metadata.name}: ${e.message}`);
			continue;
		}
		const containers = obj.spec.template.spec.containers;
		const tracer = containers.find((c) => c.name === 'tdsbpf');
		if (!tracer)
			fail(file, 'no container named tdsbpf');
		else
			checkTracer(file, tracer);
		console.log(`${file}: ${obj.kind} ${obj.metadata.name} checked`);
	}
}
process.exit(failures ? 1 : 0);
