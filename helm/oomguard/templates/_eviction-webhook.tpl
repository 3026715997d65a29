{{/* The eviction webhook (operator process): names and the operator's extra args/ports/mounts. */}}

{{- define "oomguard.webhook.enabled" -}}
{{- if and .Values.evictionWebhook.enabled .Values.operator.enabled .Values.agent.enabled -}}true{{- end -}}
{{- end -}}

{{- define "oomguard.webhook.serviceName" -}}
{{- printf "%s-webhook" (include "oomguard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.webhook.configurationName" -}}
{{- printf "%s-evictions" (include "oomguard.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "oomguard.webhook.secretName" -}}
{{- default (printf "%s-webhook-tls" (include "oomguard.operator.fullname" .)) .Values.evictionWebhook.tls.secretName -}}
{{- end -}}

{{- define "oomguard.webhook.agentUsername" -}}
{{- printf "system:serviceaccount:%s:%s" (include "oomguard.namespace" .) (include "oomguard.agent.serviceAccountName" .) -}}
{{- end -}}

{{- define "oomguard.webhook.operatorArgs" -}}
{{- if include "oomguard.webhook.enabled" . -}}
- --webhook-port={{ .Values.evictionWebhook.port }}
- --webhook-agent={{ include "oomguard.namespace" . }}:{{ include "oomguard.agent.serviceAccountName" . }}
- --webhook-max-evictions={{ .Values.evictionWebhook.clusterEvictionCap.maxEvictions }}
- --webhook-eviction-window={{ .Values.evictionWebhook.clusterEvictionCap.windowSeconds }}
{{- if eq .Values.evictionWebhook.tls.mode "generate" }}
- --webhook-service={{ include "oomguard.webhook.serviceName" . }}
- --webhook-configuration={{ include "oomguard.webhook.configurationName" . }}
{{- else }}
- --webhook-cert-dir=/etc/oomguard/webhook-tls
{{- end }}
{{- end }}
{{- end -}}

{{- define "oomguard.webhook.operatorPorts" -}}
{{- if include "oomguard.webhook.enabled" . -}}
- name: webhook
  containerPort: {{ .Values.evictionWebhook.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{- define "oomguard.webhook.operatorMounts" -}}
{{- if and (include "oomguard.webhook.enabled" .) (ne .Values.evictionWebhook.tls.mode "generate") -}}
- name: webhook-tls
  mountPath: /etc/oomguard/webhook-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "oomguard.webhook.operatorVolumes" -}}
{{- if and (include "oomguard.webhook.enabled" .) (ne .Values.evictionWebhook.tls.mode "generate") -}}
- name: webhook-tls
  secret:
    secretName: {{ include "oomguard.webhook.secretName" . }}
{{- end }}
{{- end -}}
