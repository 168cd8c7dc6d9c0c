#!/usr/bin/env node
// Runs @elastic/mockopampserver (a server we did not write) for the opamp-rs interop tests.
//
// Why a wrapper and not the package's `mockopampserver` CLI: the CLI always listens on port
// 4320 (tests run in parallel and need port 0) and logs colored util.inspect() dumps; here the
// same MockOpAMPServer class runs in its test mode and reports what it saw as JSON lines.
//
//   node mock-server.js [--config NAME=JSON_TEXT]... [--content-type TYPE]
//
// stdout: one JSON object per line, each with an "event" key:
//   {"event":"listening","endpoint":"http://127.0.0.1:PORT/v1/opamp"}
//   {"event":"request","status":N,"content_type":S,"req_content_type":S,"user_agent":S,
//    "instance_uid":HEX,"seq":N,"capabilities":N,"agent_description":{...}|null,
//    "remote_config_status":{"status":N,"hash":HEX,"error":S}|null,
//    "effective_config":bool,"agent_disconnect":bool,
//    "s2a_instance_uid":HEX,"flags":N,"remote_config_hash":HEX|null,"error":S|null}
//   {"event":"config_set","files":[NAMES]}
// stdin: one JSON command per line:
//   {"cmd":"set_config","files":{NAME:{"body":S,"content_type":S}}}
// The server exits when stdin closes or on SIGTERM.
'use strict';

const {MockOpAMPServer} = require('@elastic/mockopampserver');

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

const hex = (bytes) => (bytes && bytes.length ? Buffer.from(bytes).toString('hex') : null);

function usage(msg) {
    process.stderr.write(
        `mock-server.js: ${msg}\nusage: node mock-server.js [--config NAME=JSON_TEXT]... [--content-type TYPE]\n`
    );
    process.exit(2);
}

const files = {};
let contentType = 'application/json';
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--config') {
        const spec = argv[++i] ?? usage('--config needs NAME=TEXT');
        const eq = spec.indexOf('=');
        if (eq < 0) usage(`--config ${spec}: expected NAME=TEXT`);
        files[spec.slice(0, eq)] = spec.slice(eq + 1);
    } else if (argv[i] === '--content-type') {
        contentType = argv[++i] ?? usage('--content-type needs a value');
    } else {
        usage(`unexpected argument ${argv[i]}`);
    }
}

function configMap(entries) {
    const map = {};
    for (const [name, f] of Object.entries(entries)) {
        const body = typeof f === 'string' ? f : f.body;
        const ct = typeof f === 'string' ? contentType : (f.content_type ?? contentType);
        map[name] = {body: Buffer.from(body, 'utf8'), contentType: ct};
    }
    return {configMap: map};
}

function attrs(kvs) {
    const out = {};
    for (const kv of kvs ?? []) {
        const v = kv.value?.value;
        out[kv.key] = typeof v?.value === 'bigint' ? Number(v.value) : (v?.value ?? null);
    }
    return out;
}

function header(raw, name) {
    const m = new RegExp(`^${name}: *(.*)$`, 'im').exec(raw ?? '');
    return m ? m[1].trim() : null;
}

function summarize(r) {
    const a2s = r.a2s;
    const s2a = r.s2a;
    const rcs = a2s?.remoteConfigStatus;
    return {
        event: 'request',
        method: r.req?.method ?? null,
        status: r.res?.statusCode ?? null,
        content_type: header(r.res?._header, 'content-type'),
        req_content_type: r.req?.headers?.['content-type'] ?? null,
        req_content_encoding: r.req?.headers?.['content-encoding'] ?? null,
        user_agent: r.req?.headers?.['user-agent'] ?? null,
        instance_uid_header: r.req?.headers?.['opamp-instance-uid'] ?? null,
        instance_uid: hex(a2s?.instanceUid),
        seq: a2s ? Number(a2s.sequenceNum) : null,
        capabilities: a2s ? Number(a2s.capabilities) : null,
        agent_description: a2s?.agentDescription
            ? {
                  identifying: attrs(a2s.agentDescription.identifyingAttributes),
                  non_identifying: attrs(a2s.agentDescription.nonIdentifyingAttributes),
              }
            : null,
        remote_config_status: rcs
            ? {status: rcs.status, hash: hex(rcs.lastRemoteConfigHash), error: rcs.errorMessage}
            : null,
        effective_config: Boolean(a2s?.effectiveConfig),
        agent_disconnect: Boolean(a2s?.agentDisconnect),
        s2a_instance_uid: hex(s2a?.instanceUid),
        flags: s2a ? Number(s2a.flags) : null,
        remote_config_hash: s2a?.remoteConfig ? hex(s2a.remoteConfig.configHash) : null,
        error: r.err ? String(r.err.message ?? r.err) : null,
    };
}

async function main() {
    const server = new MockOpAMPServer({
        logLevel: 'warn',
        hostname: '127.0.0.1',
        port: 0,
        testMode: true,
        agentConfigMap: Object.keys(files).length ? configMap(files) : undefined,
    });
    await server.start();
    emit({event: 'listening', endpoint: server.endpoint});

    // Report requests as the mock records them (its public test-mode API).
    let seen = 0;
    const poll = setInterval(() => {
        const reqs = server.testGetRequests();
        for (; seen < reqs.length; seen++) emit(summarize(reqs[seen]));
    }, 20);

    let buf = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (!line) continue;
            let cmd;
            try {
                cmd = JSON.parse(line);
            } catch (err) {
                process.stderr.write(`mock-server.js: bad command ${line}: ${err.message}\n`);
                continue;
            }
            if (cmd.cmd === 'set_config') {
                server.setAgentConfigMap(configMap(cmd.files ?? {}));
                emit({event: 'config_set', files: Object.keys(cmd.files ?? {})});
            } else {
                process.stderr.write(`mock-server.js: unknown command ${line}\n`);
            }
        }
    });

    let stopping = false;
    const stop = async () => {
        if (stopping) return;
        stopping = true;
        clearInterval(poll);
        const reqs = server.testGetRequests();
        for (; seen < reqs.length; seen++) emit(summarize(reqs[seen]));
        // Keep-alive connections would hold close() open; exit once the listener is down.
        server.close().catch(() => {});
        setTimeout(() => process.exit(0), 100).unref();
        emit({event: 'stopped'});
    };
    process.stdin.on('end', stop);
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

main().catch((err) => {
    process.stderr.write(`mock-server.js: ${err?.stack ?? err}\n`);
    process.exit(1);
});
