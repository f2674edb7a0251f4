/**
 * The `deployment` block of a standalone data plane started in-process by a test: `config_provider: yaml` reading
 * `file`, and an etcd address nothing answers at (nothing may use etcd). Indented for the top level of config.yaml.
 */
export function standaloneDeployment(file: string): string {
  return `deployment:
  role_data_plane:
    config_provider: yaml
    config_file: ${JSON.stringify(file)}
  etcd: { host: ["http://127.0.0.1:9"] }
`;
}
