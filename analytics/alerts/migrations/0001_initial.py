"""NotificationChannel, AlertRule and AlertEvent, moved from ``analytics`` with their tables.

State only (``database_operations=[]``): the tables exist already, created by analytics' own
migrations; ``analytics.0010`` took the models out of its state just before.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("analytics", "0010_move_alerts_and_quotas"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='NotificationChannel',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('kind', models.CharField(choices=[('email', 'Email'), ('webhook', 'Webhook')], max_length=10)),
                        ('url', models.URLField(blank=True, max_length=1000)),
                        ('format', models.CharField(choices=[('generic', 'Generic JSON'), ('slack', 'Slack'), ('feishu', 'Feishu (Lark)'), ('dingtalk', 'DingTalk'), ('wecom', 'WeCom')], default='generic', max_length=10)),
                        ('recipients', models.TextField(blank=True, help_text='Email addresses, one per line or comma-separated. Empty: active staff with the dashboard permission.')),
                        ('enabled', models.BooleanField(default=True)),
                    ],
                    options={
                        'db_table': 'analytics_notificationchannel',
                    },
                ),
                migrations.CreateModel(
                    name='AlertRule',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('metric', models.CharField(choices=[('success_rate', 'AI call success rate'), ('avg_latency_seconds', 'Average AI response time (s)'), ('daily_tokens_ratio', 'Daily tokens / trailing daily average'), ('daily_cost_usd', 'Daily cost (USD)'), ('http_error_rate', 'HTTP 5xx rate of the app'), ('experiment_guardrail', 'Experiments paused by a guardrail')], max_length=32)),
                        ('comparison', models.CharField(choices=[('lt', '<'), ('gt', '>')], max_length=2)),
                        ('threshold', models.DecimalField(decimal_places=4, max_digits=14)),
                        ('window_minutes', models.PositiveIntegerField(default=60, help_text='Rolling window of rate and latency rules, rounded out to whole hours for AI calls (minutes for HTTP requests). Daily rules look at the day so far.')),
                        ('min_samples', models.PositiveIntegerField(default=20, help_text='Fewer calls (or requests) than this in the window: no verdict.')),
                        ('baseline_days', models.PositiveIntegerField(default=7, help_text='Tokens rule: complete days averaged for the baseline.')),
                        ('min_history_days', models.PositiveIntegerField(default=3, help_text='Tokens rule: fewer days with calls in the baseline: no verdict.')),
                        ('cooldown_minutes', models.PositiveIntegerField(default=60, help_text='A rule that stays bad notifies again only after this long.')),
                        ('likely_cause', models.CharField(blank=True, max_length=300)),
                        ('enabled', models.BooleanField(default=True)),
                        ('channels', models.ManyToManyField(blank=True, related_name='rules', to='alerts.notificationchannel')),
                    ],
                    options={
                        'db_table': 'analytics_alertrule',
                        'ordering': ['name'],
                    },
                ),
                migrations.CreateModel(
                    name='AlertEvent',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('state', models.CharField(choices=[('firing', 'Firing'), ('resolved', 'Resolved')], default='firing', max_length=10)),
                        ('value', models.DecimalField(decimal_places=6, max_digits=18)),
                        ('threshold', models.DecimalField(decimal_places=4, max_digits=14)),
                        ('samples', models.PositiveIntegerField(default=0)),
                        ('window_start', models.DateTimeField()),
                        ('window_end', models.DateTimeField()),
                        ('started_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                        ('last_notified_at', models.DateTimeField(blank=True, null=True)),
                        ('notifications', models.JSONField(blank=True, default=list)),
                        ('acknowledged_at', models.DateTimeField(blank=True, null=True)),
                        ('acknowledged_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('rule', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='events', to='alerts.alertrule')),
                    ],
                    options={
                        'db_table': 'analytics_alertevent',
                        'ordering': ['-started_at'],
                        'constraints': [models.UniqueConstraint(condition=models.Q(('state', 'firing')), fields=('rule',), name='one_firing_event_per_rule')],
                    },
                ),
            ],
            database_operations=[],
        )
    ]
