import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { parseConfigText } from '../../src/config/load.js';
import { FILTERS, HELD_MESSAGE_TIMEOUT_MS, LARGE_BODY_MESSAGE_TIMEOUT_MS, REQUEST_ATTRIBUTES } from '../../src/contract/envoy.js';
import { apiError } from '../../src/contract/errors.js';
import { envoyBinary, REPO } from '../../src/launcher/envoy.js';

const read = (path: string) => readFileSync(join(REPO, path), 'utf8');
const compose = parse(read('docker-compose.yml'), { merge: true });
const bootstrap = parse(read('envoy/envoy.yaml'));

describe('docker-compose.yml (checked statically: no Docker engine runs here)', () => {
  const services = compose.services as Record<string, any>;

  it('has Envoy, the router and three backends in each profile', () => {
    expect(Object.keys(services)).toEqual(
      expect.arrayContaining(['envoy', 'router', 'vllm-llama-a', 'vllm-llama-b', 'vllm-qwen-a', 'gpu-llama-a', 'gpu-llama-b', 'gpu-qwen-a']),
    );
    expect(services.envoy.image).toMatch(/^envoyproxy\/envoy:v1\.\d+/);
    expect(services.router.build).toBe('.');
    for (const name of ['vllm-llama-a', 'vllm-llama-b', 'vllm-qwen-a']) expect(services[name].profiles).toEqual(['sim']);
    for (const name of ['gpu-llama-a', 'gpu-llama-b', 'gpu-qwen-a']) {
      expect(services[name].profiles).toEqual(['gpu']);
      expect(services[name].image).toMatch(/^vllm\/vllm-openai/);
    }
    expect(read('.env')).toMatch(/^COMPOSE_PROFILES=sim$/m);
    expect(services.prometheus.profiles).toEqual(['monitoring']);
    expect(services.prometheus.network_mode).toBe('service:envoy');
    expect(services.grafana.ports).toEqual(['127.0.0.1:3000:3000']);
  });

  it('mounts files that exist', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const host = String(volume).split(':')[0]!;
        if (host.startsWith('./')) expect(existsSync(join(REPO, host)), `${name} mounts ${host}`).toBe(true);
      }
    }
    expect(existsSync(join(REPO, 'Dockerfile'))).toBe(true);
    expect(read('Dockerfile')).toMatch(/dist\/main\.js/);
    expect(existsSync(join(REPO, 'src/main.ts')) && existsSync(join(REPO, 'src/simulator/main.ts'))).toBe(true);
  });

  it('wires the ports: Envoy listens where compose publishes, and reaches the router it shares a network namespace with', () => {
    const routerConfigPath = services.router.volumes[0].split(':')[0];
    const routerConfig = parseConfigText(read(routerConfigPath), routerConfigPath);
    expect(services.router.network_mode).toBe('service:envoy');
    const listenerPort = bootstrap.static_resources.listeners[0].address.socket_address.port_value;
    expect(services.envoy.ports).toContain(`${listenerPort}:${listenerPort}`);
    const cp = bootstrap.static_resources.clusters.find((c: any) => c.name === 'router_control_plane');
    const cpAddress = cp.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address;
    expect(cpAddress).toEqual({ address: routerConfig.grpc.host, port_value: routerConfig.grpc.port });
    expect(services.envoy.ports).toContain(`127.0.0.1:${routerConfig.admin.port}:${routerConfig.admin.port}`);

    // Every backend host resolves in both profiles: a simulator service, or a GPU server's alias.
    const simNames = new Set(Object.keys(services).filter((n) => services[n].profiles?.includes('sim')));
    const gpuAliases = new Set(
      Object.values(services)
        .filter((s: any) => s.profiles?.includes('gpu'))
        .flatMap((s: any) => s.networks?.default?.aliases ?? []),
    );
    for (const backend of routerConfig.backends) {
      const url = new URL(backend.url);
      expect(simNames.has(url.hostname), `${url.hostname} in profile sim`).toBe(true);
      expect(gpuAliases.has(url.hostname), `${url.hostname} in profile gpu`).toBe(true);
      expect(url.port).toBe('8000');
    }
  });
});

describe('Envoy configuration', () => {
  it.each(['envoy/envoy.yaml', 'envoy/mesh/envoy-picker.yaml'])('%s passes envoy --mode validate', async (file) => {
    const { stdout, stderr } = await promisify(execFile)(envoyBinary(), ['--mode', 'validate', '-c', join(REPO, file), '-l', 'warning']);
    expect(stdout).toMatch(/OK/);
    expect(stdout + stderr).not.toMatch(/deprecat/i);
  });

  it('the paste-in snippet parses and matches the runnable picker example', () => {
    const snippet = parse(read('envoy/mesh/picker-snippet.yaml'));
    const example = parse(read('envoy/mesh/envoy-picker.yaml'));
    const exampleExtProc = example.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters.find(
      (f: { name: string }) => f.name === 'envoy.filters.http.ext_proc',
    );
    const snippetExtProc = snippet.http_filters.find((f: { name: string }) => f.name === 'envoy.filters.http.ext_proc');
    expect(snippetExtProc.typed_config.processing_mode.request_body_mode).toBe(exampleExtProc.typed_config.processing_mode.request_body_mode);
    expect(snippetExtProc.typed_config.metadata_options).toEqual(exampleExtProc.typed_config.metadata_options);
  });

  it('strips client routing headers before ext_proc and fails open to routing by model', () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const names = hcm.http_filters.map((f: any) => f.name);
    expect(names).toEqual([
      'envoy.filters.http.header_mutation',
      'envoy.filters.http.ext_proc',
      'vllm_router.ext_proc.large_body',
      'envoy.filters.http.buffer',
      'envoy.filters.http.json_to_metadata',
      'envoy.filters.http.router',
    ]);
    const removed = hcm.http_filters[0].typed_config.mutations.request_mutations.map((m: any) => m.remove);
    expect(removed).toEqual(expect.arrayContaining(['x-vllm-router-cluster', 'x-gateway-destination-endpoint']));
    expect(hcm.http_filters[1].typed_config.failure_mode_allow).toBe(true);
    expect(hcm.http_filters[2].typed_config.failure_mode_allow).toBe(true);
    expect(bootstrap.admin.address.socket_address.address).toBe('127.0.0.1');
  });

  it('sends the router only the body, with the header values it reads as attributes', () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const extProc = hcm.http_filters.find((f: any) => f.name === 'envoy.filters.http.ext_proc').typed_config;
    expect(extProc.processing_mode).toMatchObject({ request_header_mode: 'SKIP', request_body_mode: 'BUFFERED', response_header_mode: 'SKIP' });
    expect(extProc.request_attributes).toEqual(expect.arrayContaining(Object.values(REQUEST_ATTRIBUTES)));
  });

  it('bounds slow and silent clients, and caps connections within the file descriptor limit', async () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    expect(hcm.request_headers_timeout).toBe('10s');
    expect(hcm.common_http_protocol_options.idle_timeout).toBe('60s');
    const cap = bootstrap.overload_manager.resource_monitors.find((m: any) => m.name === 'envoy.resource_monitors.global_downstream_max_connections');
    // Each proxied request holds a client connection and one to its backend.
    const { stdout } = await promisify(execFile)('sh', ['-c', 'ulimit -n']);
    expect(cap.typed_config.max_active_downstream_connections * 2).toBeLessThanOrEqual(Number(stdout.trim()));
  });

  it('has one ext_proc filter for large bodies, off unless a route turns it on, alike but for its headers and timeout', () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const byName = (name: string) => hcm.http_filters.find((f: any) => f.name === name);
    const usual = byName(FILTERS.extProc);
    const large = byName(FILTERS.extProcLargeBody);
    expect(large.disabled).toBe(true);
    expect(usual.typed_config.message_timeout).toBe('1s');
    // Both allow the router's request for more time: a large body, or a request held by flow control.
    expect(LARGE_BODY_MESSAGE_TIMEOUT_MS).toBeLessThan(HELD_MESSAGE_TIMEOUT_MS);
    expect(usual.typed_config.max_message_timeout).toBe(`${HELD_MESSAGE_TIMEOUT_MS / 1000}s`);
    expect(large.typed_config.message_timeout).toBe(`${LARGE_BODY_MESSAGE_TIMEOUT_MS / 1000}s`);
    expect(large.typed_config.max_message_timeout).toBe(`${HELD_MESSAGE_TIMEOUT_MS / 1000}s`);
    // Its headers go to the router, which admits the body within its budget.
    expect(large.typed_config.processing_mode.request_header_mode).toBe('SEND');
    const rest = (c: any) => ({ ...c, message_timeout: undefined, max_message_timeout: undefined, processing_mode: { ...c.processing_mode, request_header_mode: undefined } });
    expect(rest(large.typed_config)).toEqual(rest(usual.typed_config));
    expect(byName(FILTERS.jsonToMetadata)).toBeDefined();
  });

  it("answers Envoy's overload refusal with the error catalogue's proxy_overloaded", () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const overloaded = hcm.local_reply_config.mappers.find((m: any) => m.filter.extension_filter?.typed_config.expression?.includes('overload'));
    const { message, type, param, code } = apiError('proxy_overloaded');
    expect(overloaded.body_format_override.json_format).toEqual({ error: { message, type, param, code } });
  });

  it("answers a body over the limit with the error catalogue's request_too_large", () => {
    const hcm = bootstrap.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    const tooLarge = hcm.local_reply_config.mappers.find((m: any) => m.filter.status_code_filter?.comparison.value.default_value === 413);
    const { message, type, param, code } = apiError('request_too_large');
    expect(tooLarge.body_format_override.json_format).toEqual({ error: { message, type, param, code } });
  });
});

describe('example router configs', () => {
  it.each(['examples/router.demo.yaml', 'examples/router.vllm.yaml', 'examples/router.compose.yaml'])('%s is valid', (path) => {
    expect(() => parseConfigText(read(path), path)).not.toThrow();
  });
});

describe('Kubernetes manifests (parsed: no cluster runs here)', () => {
  const docs = (file: string) => parseAllDocuments(read(file)).map((d) => d.toJS() as Record<string, any>);

  it('deploy the router with its config, RBAC and a cluster-internal Service', () => {
    const objects = docs('envoy/kubernetes/router.yaml');
    const byKind = new Map(objects.map((o) => [o.kind as string, o]));
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Namespace', 'NetworkPolicy', 'Role', 'RoleBinding', 'Service', 'Service', 'ServiceAccount', 'StatefulSet']);
    for (const o of objects) expect(o.apiVersion, o.kind).toBeTruthy();

    const config = parseConfigText(byKind.get('ConfigMap')!.data['router.yaml'], 'ConfigMap router.yaml');
    const deployment = byKind.get('StatefulSet')!;
    const container = deployment.spec.template.spec.containers[0];
    expect(container.args).toEqual(['--config', '/etc/vllm-router/router.yaml']);
    expect(container.volumeMounts[0].mountPath).toBe('/etc/vllm-router');
    expect(deployment.spec.template.spec.volumes[0].configMap.name).toBe(byKind.get('ConfigMap')!.metadata.name);
    expect(deployment.spec.template.spec.serviceAccountName).toBe(byKind.get('ServiceAccount')!.metadata.name);
    const ports = Object.fromEntries(container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]));
    expect(ports).toEqual({ grpc: config.grpc.port, admin: config.admin.port });
    const service = objects.find((o) => o.kind === 'Service' && o.metadata.name === 'vllm-router')!;
    expect(service.spec.type).toBe('ClusterIP');
    // Each replica lists every replica by the stable name the headless Service gives it.
    const peers = objects.find((o) => o.kind === 'Service' && o.spec.clusterIP === 'None')!;
    expect(deployment.spec.serviceName).toBe(peers.metadata.name);
    expect(peers.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(config.peers.addresses).toEqual(
      Array.from({ length: deployment.spec.replicas }, (_, i) => `${deployment.metadata.name}-${i}.${peers.metadata.name}.${deployment.metadata.namespace}.svc:${config.grpc.port}`),
    );
    // The unauthenticated ports admit only the gateway (gRPC) and Prometheus (admin).
    const policy = byKind.get('NetworkPolicy')!;
    expect(policy.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const admitted = Object.fromEntries(
      policy.spec.ingress.map((rule: any) => [rule.ports.map((p: any) => p.port).join(), rule.from.map((f: any) => Object.keys(f.podSelector.matchLabels)[0])]),
    );
    expect(admitted).toEqual({
      grpc: ['gateway.networking.k8s.io/gateway-name', 'gateway.envoyproxy.io/owning-gateway-name', 'app.kubernetes.io/name'],
      admin: ['app.kubernetes.io/name'],
    });
    for (const rule of policy.spec.ingress) expect(rule.from.every((f: any) => Object.keys(f.podSelector.matchLabels).length > 0)).toBe(true);
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
    expect(container.image).toBe(parse(read('docker-compose.yml'), { merge: true }).services.router.image);
  });

  it('wire an InferencePool to the router as its endpoint picker', () => {
    const objects = docs('envoy/kubernetes/inference-pool-gateway.yaml');
    const pool = objects.find((o) => o.kind === 'InferencePool')!;
    const service = docs('envoy/kubernetes/router.yaml').find((o) => o.kind === 'Service' && o.metadata.name === 'vllm-router')!;
    expect(pool.spec.endpointPickerRef.name).toBe(service.metadata.name);
    expect(pool.spec.endpointPickerRef.port.number).toBe(service.spec.ports.find((p: { name: string }) => p.name === 'grpc').port);
    const route = objects.find((o) => o.kind === 'HTTPRoute')!;
    expect(route.spec.rules[0].backendRefs[0]).toMatchObject({ kind: 'InferencePool', name: pool.metadata.name });
  });
});
