#!/usr/bin/env node
// Drives @elastic/opamp-client-node (a peer we did not write) against an OpAMP server, for the
// opamp-rs interop tests (crates/opamp-interop).
//
//   node agent.js URL [--service-name NAME] [--heartbeat SECONDS] [--verbose]
//
// stdout: one JSON object per line, each with an "event" key:
//   {"event":"started","peer":"node","instance_uid":HEX}
//   {"event":"connected"}                                       first successful exchange
//   {"event":"exchange","seq":N,"sent":[...],"s2a_instance_uid":HEX,"flags":N,
//    "server_capabilities":N,"remote_config_hash":HEX|null,
//    "http_status":N,"content_type":S}                         every successful exchange
//   {"event":"send_failed","seq":N,"error":STRING,"retry_after_ms":N|null,
//    "http_status":N|null,"content_type":S|null}
//   {"event":"remote_config","hash":HEX,"files":{NAME:{"content_type":S,"body":S}}}
//   {"event":"remote_config_status","status":"APPLIED","hash":HEX}
//   {"event":"stopped"}
// stderr: the client's own log lines (warn and above; everything with --verbose).
//
// The remote config is "applied" by reporting APPLIED with its hash (RCFG-3). The process runs
// until stdin closes, or SIGTERM/SIGINT, then shuts the client down and exits 0.
'use strict';

const dc = require('node:diagnostics_channel');
const {
    createOpAMPClient,
    AgentCapabilities,
    RemoteConfigStatuses,
    DIAG_CH_SEND_SUCCESS,
    DIAG_CH_SEND_FAIL,
} = require('@elastic/opamp-client-node');

function usage(msg) {
    process.stderr.write(
        `agent.js: ${msg}\nusage: node agent.js URL [--service-name NAME] [--heartbeat SECONDS] [--verbose]\n`
    );
    process.exit(2);
}

function parseArgs(argv) {
    const opts = {url: null, serviceName: 'interop-node-agent', heartbeat: 1, verbose: false};
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === '--service-name') {
            opts.serviceName = argv[++i] ?? usage('--service-name needs a value');
        } else if (a === '--heartbeat') {
            opts.heartbeat = Number(argv[++i]);
            if (!(opts.heartbeat > 0)) usage('--heartbeat needs a positive number');
        } else if (a === '--verbose') {
            opts.verbose = true;
        } else if (a.startsWith('--')) {
            usage(`unknown flag ${a}`);
        } else if (opts.url === null) {
            opts.url = a;
        } else {
            usage(`unexpected argument ${a}`);
        }
    }
    if (opts.url === null) usage('missing server URL');
    return opts;
}

const opts = parseArgs(process.argv.slice(2));

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

const hex = (bytes) => (bytes ? Buffer.from(bytes).toString('hex') : null);

// A logger with the pino/bunyan method shape the client expects, writing to stderr.
function makeLog(verbose) {
    const levels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
    const min = verbose ? 0 : 3;
    const log = {};
    levels.forEach((name, idx) => {
        log[name] = (...args) => {
            if (idx < min) return;
            const parts = args.map((a) =>
                a instanceof Error
                    ? a.stack
                    : typeof a === 'object'
                      ? require('node:util').inspect(a, {depth: 4, breakLength: Infinity})
                      : String(a)
            );
            process.stderr.write(`[node-client ${name}] ${parts.join(' ')}\n`);
        };
    });
    log.child = () => log;
    return log;
}

let client;
let connected = false;
let appliedHash = null;

function onMessage({remoteConfig}) {
    if (!remoteConfig) return;
    const hash = hex(remoteConfig.configHash);
    const files = {};
    for (const [name, file] of Object.entries(remoteConfig.config?.configMap ?? {})) {
        files[name] = {
            content_type: file.contentType,
            body: Buffer.from(file.body).toString('utf8'),
        };
    }
    emit({event: 'remote_config', hash, files});
    if (hash === appliedHash) return; // MSG-3: repeated offers are idempotent.
    appliedHash = hash;
    client.setRemoteConfigStatus({
        status: RemoteConfigStatuses.RemoteConfigStatuses_APPLIED,
        lastRemoteConfigHash: remoteConfig.configHash,
    });
    emit({event: 'remote_config_status', status: 'APPLIED', hash});
}

function sentParts(a2s) {
    const parts = [];
    if (a2s.agentDescription) parts.push('agent_description');
    if (a2s.remoteConfigStatus) parts.push('remote_config_status');
    if (a2s.effectiveConfig) parts.push('effective_config');
    if (a2s.agentDisconnect) parts.push('agent_disconnect');
    return parts;
}

// The HTTP status and Content-Type of the latest response, read from undici's own
// diagnostics channel (the client sends one request at a time).
let lastResponse = {status: null, content_type: null};
dc.subscribe('undici:request:headers', ({response}) => {
    let contentType = null;
    const raw = response.headers ?? [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
        if (String(raw[i]).toLowerCase() === 'content-type') contentType = String(raw[i + 1]);
    }
    lastResponse = {status: response.statusCode, content_type: contentType};
});

dc.subscribe(DIAG_CH_SEND_SUCCESS, (msg) => {
    if (!connected) {
        connected = true;
        emit({event: 'connected'});
    }
    emit({
        event: 'exchange',
        seq: Number(msg.a2s.sequenceNum),
        sent: sentParts(msg.a2s),
        s2a_instance_uid: hex(msg.s2a.instanceUid),
        flags: Number(msg.s2a.flags),
        server_capabilities: Number(msg.s2a.capabilities),
        remote_config_hash: msg.s2a.remoteConfig ? hex(msg.s2a.remoteConfig.configHash) : null,
        http_status: lastResponse.status,
        content_type: lastResponse.content_type,
    });
});
dc.subscribe(DIAG_CH_SEND_FAIL, (msg) => {
    emit({
        event: 'send_failed',
        seq: Number(msg.a2s.sequenceNum),
        error: String(msg.err?.message ?? msg.err),
        retry_after_ms: msg.retryAfterMs ?? null,
        http_status: lastResponse.status,
        content_type: lastResponse.content_type,
    });
});

const capabilities =
    BigInt(AgentCapabilities.AgentCapabilities_AcceptsRemoteConfig) |
    BigInt(AgentCapabilities.AgentCapabilities_ReportsRemoteConfig);

client = createOpAMPClient({
    endpoint: opts.url,
    capabilities,
    heartbeatIntervalSeconds: opts.heartbeat,
    onMessage,
    diagEnabled: true,
    log: makeLog(opts.verbose),
});
client.setAgentDescription({
    identifyingAttributes: {
        'service.name': opts.serviceName,
        'service.version': '1.2.3',
    },
    nonIdentifyingAttributes: {
        'os.type': process.platform,
        'host.name': 'interop-host',
        'telemetry.sdk.language': 'nodejs',
    },
});
emit({
    event: 'started',
    peer: 'node',
    instance_uid: hex(client.getInstanceUid()),
});
client.start();

// The client unrefs its timers; keep the process alive until told to stop.
const keepAlive = setInterval(() => {}, 1 << 30);
let stopping = false;
async function stop() {
    if (stopping) return;
    stopping = true;
    clearInterval(keepAlive);
    try {
        await client.shutdown();
    } catch (err) {
        process.stderr.write(`[agent.js] shutdown error: ${err?.stack ?? err}\n`);
    }
    emit({event: 'stopped'});
    process.exit(0);
}
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
