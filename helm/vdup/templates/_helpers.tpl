{{/*
Names, labels and small shared fragments. Every resource name and every app.kubernetes.io/*
label comes from here, so selectors and the objects they select can never disagree.
*/}}

{{/* Chart name, overridable with nameOverride. */}}
{{- define "vdup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<chart>" unless the release name already contains the chart name. Truncated to
44 characters so that suffixed names stay valid: "-indexer-headless" within 63, and the
StatefulSet's controller-revision-hash label ("<name>-indexer-<10 chars>") within 63 too. */}}
{{- define "vdup.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 44 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 44 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 44 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "vdup.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select the pods of one component. Call with (dict "ctx" $ "component" "api"). */}}
{{- define "vdup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vdup.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of a resource of one component: selector labels plus version and owner. */}}
{{- define "vdup.labels" -}}
helm.sh/chart: {{ include "vdup.chart" .ctx }}
{{ include "vdup.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: vdup
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Component resource names. */}}
{{- define "vdup.api.fullname" -}}{{ include "vdup.fullname" . }}-api{{- end -}}
{{- define "vdup.triton.fullname" -}}{{ include "vdup.fullname" . }}-triton{{- end -}}
{{- define "vdup.indexer.fullname" -}}{{ include "vdup.fullname" . }}-indexer{{- end -}}
{{- define "vdup.indexer.headlessName" -}}{{ include "vdup.fullname" . }}-indexer-headless{{- end -}}

{{/* ServiceAccount of the API pods. */}}
{{- define "vdup.api.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "vdup.api.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Secret holding the API keys, and the key inside it. */}}
{{- define "vdup.api.secretName" -}}
{{- default (printf "%s-keys" (include "vdup.api.fullname" .)) .Values.api.auth.existingSecret -}}
{{- end -}}
{{- define "vdup.api.secretKey" -}}
{{- if .Values.api.auth.existingSecret -}}{{ .Values.api.auth.existingSecretKey }}{{- else -}}api-keys{{- end -}}
{{- end -}}

{{/* "registry/repository:tag" or "registry/repository@digest". Call with (dict "image" .Values.image "ctx" $). */}}
{{- define "vdup.imageRef" -}}
{{- $repo := .image.repository -}}
{{- if .image.registry -}}{{- $repo = printf "%s/%s" .image.registry .image.repository -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}
{{- define "vdup.image" -}}{{ include "vdup.imageRef" (dict "image" .Values.image "ctx" .) }}{{- end -}}
{{- define "vdup.triton.image" -}}{{ include "vdup.imageRef" (dict "image" .Values.triton.image "ctx" .) }}{{- end -}}

{{/* Indexer base URLs for indexer.discovery=static: one stable DNS name per StatefulSet pod,
one entry per shard; with a database each entry is the shard's replicas joined by "|". */}}
{{- define "vdup.indexer.staticUrls" -}}
{{- $urls := list -}}
{{- $sets := include "vdup.indexer.sets" . | fromJsonArray -}}
{{- range $i := until (int .Values.indexer.replicas) -}}
{{- $group := list -}}
{{- range $set := $sets -}}
{{- $group = append $group (printf "http://%s-%d.%s.%s.svc:%d" $set.name $i $set.service $.Release.Namespace (int $.Values.indexer.port)) -}}
{{- end -}}
{{- $urls = append $urls (join "|" $group) -}}
{{- end -}}
{{- join "," $urls -}}
{{- end -}}

{{/* An HTTP probe from a probe values block. Call with (dict "probe" .Values.api.livenessProbe "path" "/healthz" "port" "http"). */}}
{{- define "vdup.httpProbe" -}}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- with .probe.successThreshold }}
successThreshold: {{ . }}
{{- end }}
{{- end -}}

{{/* A preStop hook that sleeps N seconds (the reason is given where each component sets N).
exec of /bin/sh rather than the lifecycle "sleep" action, which older clusters (< 1.30) lack;
both images ship /bin/sh. */}}
{{- define "vdup.preStopSleep" -}}
preStop:
  exec:
    command: ["/bin/sh", "-c", "sleep {{ . }}"]
{{- end -}}

{{/* ---- The replicated tier: the catalog truth in PostgreSQL, read-only shard replicas ---- */}}

{{/* "true" when a database is configured (database.existingSecret or
database.cloudnativepg.enabled), else "". Fails when both are set. */}}
{{- define "vdup.database.enabled" -}}
{{- if and .Values.database.existingSecret .Values.database.cloudnativepg.enabled -}}
{{- fail "set database.existingSecret (a managed PostgreSQL) or database.cloudnativepg.enabled, not both" -}}
{{- end -}}
{{- if or .Values.database.existingSecret .Values.database.cloudnativepg.enabled -}}true{{- end -}}
{{- end -}}

{{/* Name of the CloudNativePG Cluster. */}}
{{- define "vdup.database.clusterName" -}}
{{- default (printf "%s-db" (include "vdup.fullname" .)) .Values.database.cloudnativepg.name -}}
{{- end -}}

{{/* The Secret holding the database URL, and its key: the operator's "<cluster>-app" Secret
(key "uri") with CloudNativePG, else database.existingSecret / existingSecretKey. */}}
{{- define "vdup.database.secretName" -}}
{{- if .Values.database.cloudnativepg.enabled -}}{{ include "vdup.database.clusterName" . }}-app{{- else -}}{{ .Values.database.existingSecret }}{{- end -}}
{{- end -}}
{{- define "vdup.database.secretKey" -}}
{{- if .Values.database.cloudnativepg.enabled -}}uri{{- else -}}{{ .Values.database.existingSecretKey }}{{- end -}}
{{- end -}}

{{/* The VDUP_DATABASE_URL EnvVar, read from that Secret (never a value in the chart). */}}
{{- define "vdup.database.env" -}}
- name: VDUP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "vdup.database.secretName" . }}
      key: {{ include "vdup.database.secretKey" . }}
{{- end -}}

{{/* Replica sets of the indexer: 1 without a database (the shards own their data), else
indexer.replication.replicasPerShard. */}}
{{- define "vdup.indexer.replicaCount" -}}
{{- if include "vdup.database.enabled" . -}}{{ int .Values.indexer.replication.replicasPerShard }}{{- else -}}1{{- end -}}
{{- end -}}

{{/* Prefix of the replica StatefulSets "<prefix>-r<r>": the fullname cut to 41 characters, so
that "<prefix>-r<r>" stays within the 52 a StatefulSet name may have (its pods' revision-hash
label adds 11). It is also VDUP_INDEXER_SERVICE for more than one replica set. */}}
{{- define "vdup.indexer.replicaPrefix" -}}
{{- include "vdup.fullname" . | trunc 41 | trimSuffix "-" }}-indexer
{{- end -}}

{{/* The indexer StatefulSets as a JSON list of {name, service, r}: without a database the one
shard StatefulSet and its headless Service (r = -1); with one, a StatefulSet per replica index r,
its headless Service named like it. Read with fromJsonArray. */}}
{{- define "vdup.indexer.sets" -}}
{{- $sets := list -}}
{{- if include "vdup.database.enabled" . -}}
{{- $prefix := include "vdup.indexer.replicaPrefix" . -}}
{{- range $r := until (int (include "vdup.indexer.replicaCount" .)) -}}
{{- $name := printf "%s-r%d" $prefix $r -}}
{{- $sets = append $sets (dict "name" $name "service" $name "r" $r) -}}
{{- end -}}
{{- else -}}
{{- $sets = append $sets (dict "name" (include "vdup.indexer.fullname" .) "service" (include "vdup.indexer.headlessName" .) "r" -1) -}}
{{- end -}}
{{- toJson $sets -}}
{{- end -}}

{{/* VDUP_INDEXER_SERVICE with a database: the one replica Service, or the prefix the API
completes to "<prefix>-r<r>" (vdup.indexer.discovery.replica_services). */}}
{{- define "vdup.indexer.replicaService" -}}
{{- if eq (include "vdup.indexer.replicaCount" .) "1" -}}{{ include "vdup.indexer.replicaPrefix" . }}-r0{{- else -}}{{ include "vdup.indexer.replicaPrefix" . }}{{- end -}}
{{- end -}}
