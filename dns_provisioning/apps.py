from django.apps import AppConfig


class DnsProvisioningConfig(AppConfig):
    name = "dns_provisioning"
    verbose_name = "DNS (PowerDNS)"
