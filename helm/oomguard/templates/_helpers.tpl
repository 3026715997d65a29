{{/* Names, labels and small shared snippets. */}}

{{- define "oomguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespace of every namespaced object: namespaceOverride, else the release's. */}}
{{- define "oomguard.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.agent.fullname" -}}
{{- printf "%s-agent" (include "oomguard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.operator.fullname" -}}
{{- printf "%s-operator" (include "oomguard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.agent.serviceAccountName" -}}
{{- if .Values.agent.serviceAccount.create -}}
{{- default (include "oomguard.agent.fullname" .) .Values.agent.serviceAccount.name -}}
{{- else -}}
{{- required "agent.serviceAccount.name is required when agent.serviceAccount.create is false" .Values.agent.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "oomguard.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "oomguard.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- required "operator.serviceAccount.name is required when operator.serviceAccount.create is false" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels a selector matches: never change them between releases. */}}
{{- define "oomguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oomguard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
Labels for pod templates: no helm.sh/chart, so a chart-only version bump does not change the
template and does not restart every node's agent.
*/}}
{{- define "oomguard.podLabels" -}}
{{ include "oomguard.selectorLabels" . }}
app.kubernetes.io/part-of: oomguard
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end -}}

{{/* Labels for every object the chart creates. */}}
{{- define "oomguard.labels" -}}
{{ include "oomguard.selectorLabels" . }}
app.kubernetes.io/part-of: oomguard
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The image reference. global.imageRegistry (a mirror) replaces the repository's registry: the
first path part when it names a host (has a "." or ":", or is localhost), else it is prefixed.
*/}}
{{- define "oomguard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- $repository := .Values.image.repository -}}
{{- with (.Values.global | default dict).imageRegistry -}}
{{- $parts := splitList "/" $repository -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $parts = rest $parts -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) (join "/" $parts) -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets: global.imagePullSecrets then imagePullSecrets; names or {name: ...}. */}}
{{- define "oomguard.imagePullSecrets" -}}
{{- $names := list -}}
{{- range concat ((.Values.global | default dict).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) -}}
{{- $name := . -}}
{{- if kindIs "map" . }}{{ $name = get . "name" }}{{ end -}}
{{- if not (has $name $names) -}}
{{- $names = append $names $name -}}
{{- end -}}
{{- end -}}
{{- range $names }}
- name: {{ . }}
{{- end -}}
{{- end -}}

{{/*
agent.affinity, with nodes labelled agent.cgroupV1NodeLabel ruled out: the label's DoesNotExist
is added to every required nodeSelectorTerm (terms are ORed, their expressions ANDed).
*/}}
{{- define "oomguard.agent.affinity" -}}
{{- $affinity := deepCopy (.Values.agent.affinity | default dict) -}}
{{- with .Values.agent.cgroupV1NodeLabel -}}
{{- $expr := dict "key" . "operator" "DoesNotExist" -}}
{{- $node := get $affinity "nodeAffinity" | default dict -}}
{{- $required := get $node "requiredDuringSchedulingIgnoredDuringExecution" | default dict -}}
{{- $terms := get $required "nodeSelectorTerms" | default (list dict) -}}
{{- $merged := list -}}
{{- range $terms -}}
{{- $term := deepCopy . -}}
{{- $_ := set $term "matchExpressions" (append (get $term "matchExpressions" | default list) $expr) -}}
{{- $merged = append $merged $term -}}
{{- end -}}
{{- $_ := set $required "nodeSelectorTerms" $merged -}}
{{- $_ := set $node "requiredDuringSchedulingIgnoredDuringExecution" $required -}}
{{- $_ := set $affinity "nodeAffinity" $node -}}
{{- end -}}
{{- if $affinity -}}
{{- toYaml $affinity -}}
{{- end -}}
{{- end -}}

{{/* Annotations of a metrics Service: prometheus.io/* when asked, then serviceAnnotations. */}}
{{- define "oomguard.serviceAnnotations" -}}
{{- $annotations := dict -}}
{{- if .root.Values.monitoring.scrapeAnnotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (toString .port) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- $annotations = mergeOverwrite $annotations (deepCopy .root.Values.monitoring.serviceAnnotations) -}}
{{- if $annotations }}{{ toYaml $annotations }}{{ end -}}
{{- end -}}

{{/* "true" when the agent may talk to systemd's D-Bus (and gets the bus mounted): not off,
and the kubelet's driver is not known to be cgroupfs. */}}
{{- define "oomguard.agentSystemdDBus" -}}
{{- if and (ne .Values.agent.systemdDBus "off") (ne .Values.agent.cgroupDriver "cgroupfs") -}}
true
{{- end -}}
{{- end -}}

{{/* The pods' cgroup below the host's cgroup root: agent.kubepodsCgroup, else the driver's
default. Empty only when the agent is left to detect it (hostCgroupReadOnly false, no driver). */}}
{{- define "oomguard.agent.kubepodsCgroup" -}}
{{- $agent := .Values.agent -}}
{{- if $agent.kubepodsCgroup -}}
{{- trimAll "/" $agent.kubepodsCgroup -}}
{{- else if eq $agent.cgroupDriver "systemd" -}}
kubepods.slice
{{- else if eq $agent.cgroupDriver "cgroupfs" -}}
kubepods
{{- else if $agent.hostCgroupReadOnly -}}
{{- fail "agent.hostCgroupReadOnly needs the pods' cgroup: set agent.cgroupDriver (systemd or cgroupfs) or agent.kubepodsCgroup" -}}
{{- end -}}
{{- end -}}
